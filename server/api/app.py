"""The FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from server import logs
from server.api import errors, imports, metrics, operations, preview, sweeper, workers
from server.api.deps import Services
from server.api.limits import Limits
from server.api.requests import RequestIds
from server.api.schemas import ProgressEvent
from server.db import api_engine
from server.jobs import repository
from server.jobs.model import Job
from server.keys.secret import signing_secret
from server.messaging import topology
from server.progress.hub import Hub
from server.settings import Settings, get_settings
from server.storage import open_storage
from server.work.celery_app import app as celery_app


def job_by_id(engine: Engine, job_id: uuid.UUID) -> Job | None:
    with engine.connect() as connection:
        return repository.get_job(connection, job_id)


def quieter_collections() -> None:
    """Fewer full garbage collections. Each open event stream holds a few hundred objects,
    and a full collection walks them all: with the default thresholds, ten thousand open
    streams cost a pause of about a second every few seconds. Objects of the app's start are
    set aside for good; young objects get ten times the room, so that fewer of a request's
    short-lived ones outlive a collection, and the oldest generation is collected a tenth
    as often."""
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young * 10, middle, old * 10)


def make_services(settings: Settings) -> Services:
    return Services(
        settings,
        api_engine(settings),
        open_storage(settings),
        celery_app,
        signing_secret(settings),
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    quieter_collections()
    services = make_services(settings)
    # Without the broker the API starts all the same: uploads are committed, and published
    # by the sweeper once the broker is back (it declares the topology first).
    declared = await run_in_threadpool(topology.declare_if_reachable, settings)
    app.state.services = services
    app.state.hub = Hub(settings.redis_url, partial(job_by_id, services.engine))
    app.state.limits = Limits(settings, services.engine)
    sweeping = asyncio.create_task(sweeper.run_forever(services, declared))
    try:
        yield
    finally:
        sweeping.cancel()
        await app.state.hub.close()
        services.engine.dispose()


def create_app() -> FastAPI:
    logs.configure(get_settings())
    app = FastAPI(
        title="CSV import",
        version="0.1.0",
        lifespan=lifespan,
        description="Upload CSV files; their rows land in PostgreSQL exactly once.",
    )
    errors.install(app)
    app.add_middleware(RequestIds)
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    app.include_router(preview.router)
    app.include_router(imports.router)
    app.include_router(operations.router)
    app.include_router(metrics.router)
    app.include_router(workers.router)
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
