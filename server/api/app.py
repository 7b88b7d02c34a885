"""The FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from kombu import Connection

from server.api import errors, imports, metrics, operations, sweeper
from server.api.deps import Services
from server.api.schemas import ProgressEvent
from server.db import api_engine
from server.keys.secret import signing_secret
from server.messaging import topology
from server.settings import Settings, get_settings
from server.storage import LocalStorage
from server.work.celery_app import app as celery_app


def make_services(settings: Settings) -> Services:
    return Services(
        settings,
        api_engine(settings),
        LocalStorage(settings.upload_dir),
        celery_app,
        signing_secret(settings),
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    services = make_services(settings)
    with Connection(settings.broker_url) as connection:
        topology.declare(connection, topology.build(settings))
    app.state.services = services
    sweeping = asyncio.create_task(sweeper.run_forever(services))
    try:
        yield
    finally:
        sweeping.cancel()
        services.engine.dispose()


def create_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = FastAPI(
        title="CSV import",
        version="0.1.0",
        lifespan=lifespan,
        description="Upload CSV files; their rows land in PostgreSQL exactly once.",
    )
    errors.install(app)
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    app.include_router(imports.router)
    app.include_router(operations.router)
    app.include_router(metrics.router)
    return app


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the model of the events that the event stream carries."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas[ProgressEvent.__name__] = ProgressEvent.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        schemas.update(schemas[ProgressEvent.__name__].pop("$defs", {}))
        app.openapi_schema = document
    return app.openapi_schema


app = create_app()
