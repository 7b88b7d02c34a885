"""Typed dependencies: what a route needs, made once per process in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy import Engine

from server.api.limits import Limits
from server.progress.hub import Hub
from server.settings import Settings
from server.storage import Storage


@dataclass
class Services:
    settings: Settings
    engine: Engine
    storage: Storage
    celery: Celery
    secret: bytes  # signs the tokens of event-stream URLs


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def hub(request: Request) -> Hub:
    found: Hub = request.app.state.hub
    return found


HubDep = Annotated[Hub, Depends(hub)]


def limits(request: Request) -> Limits:
    found: Limits = request.app.state.limits
    return found


LimitsDep = Annotated[Limits, Depends(limits)]
