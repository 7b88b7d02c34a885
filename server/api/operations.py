"""Routes for operators and page builders: the page, health and targets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis
from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse
from kombu import Connection
from sqlalchemy import text

from server.api.auth import TenantDep
from server.api.deps import Services, ServicesDep
from server.api.schemas import Check, Health, TargetList, errors
from server.api.views import target_view
from server.targets import UnknownTarget, allowed_tables, load_target

router = APIRouter(tags=["operations"])
TIMEOUT = 3.0
PAGE = Path(__file__).resolve().parent.parent / "web" / "index.html"


@router.get("/", include_in_schema=False)
def upload_page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")


@router.get(
    "/health",
    summary="PostgreSQL, Redis and RabbitMQ, each checked for real",
    responses={503: {"model": Health, "description": "A service is down: its check says why"}},
)
def health(services: ServicesDep) -> JSONResponse:
    checks = {
        "postgresql": _check(_postgres, services),
        "redis": _check(_redis, services),
        "rabbitmq": _check(_rabbitmq, services),
    }
    healthy = all(check.ok for check in checks.values())
    body = Health(status="ok" if healthy else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if healthy else 503)


def _check(probe: Callable[[Services], None], services: Services) -> Check:
    try:
        probe(services)
    except Exception as error:  # noqa: BLE001 - any failure means the service is down
        return Check(ok=False, error=f"{type(error).__name__}: {error}")
    return Check(ok=True)


def _postgres(services: Services) -> None:
    with services.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _redis(services: Services) -> None:
    client = redis.Redis.from_url(
        services.settings.redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()


def _rabbitmq(services: Services) -> None:
    with Connection(services.settings.broker_url, connect_timeout=TIMEOUT) as connection:
        connection.ensure_connection(max_retries=1)


@router.get(
    "/targets",
    summary="Tables that imports are allowed into, with their columns",
    responses=errors(401),
)
def targets(services: ServicesDep, tenant: TenantDep) -> TargetList:
    allow_list = services.settings.import_targets
    found = []
    with services.engine.connect() as connection:
        for name in allowed_tables(connection, allow_list):
            if not tenant.allows(name):
                continue
            try:
                found.append(target_view(load_target(connection, name, allow_list)))
            except UnknownTarget:
                continue
    return TargetList(items=found)
