"""Routes for operators and page builders: health and targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse
from kombu import Connection
from sqlalchemy import text

from server.api.auth import TenantDep
from server.api.deps import ServicesDep
from server.settings import Settings
from server.targets import Target, UnknownTarget, load_target, split_name

router = APIRouter(tags=["operations"])
TIMEOUT = 3.0
PAGE = Path(__file__).resolve().parent.parent / "web" / "index.html"


@router.get("/", include_in_schema=False)
def upload_page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")


@router.get("/health", summary="PostgreSQL, Redis and RabbitMQ, each checked for real")
def health(services: ServicesDep) -> JSONResponse:
    checks = {"postgresql": _check(_postgres, services),
              "redis": _check(_redis, services),
              "rabbitmq": _check(_rabbitmq, services)}
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse({"status": "ok" if healthy else "unavailable", "checks": checks},
                        status_code=200 if healthy else 503)


def _check(probe: Any, services: ServicesDep) -> dict[str, Any]:
    try:
        probe(services)
    except Exception as error:  # noqa: BLE001 - any failure means the service is down
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True}


def _postgres(services: ServicesDep) -> None:
    with services.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _redis(services: ServicesDep) -> None:
    client = redis.Redis.from_url(services.settings.redis_url, socket_timeout=TIMEOUT,
                                  socket_connect_timeout=TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


def _rabbitmq(services: ServicesDep) -> None:
    with Connection(services.settings.broker_url, connect_timeout=TIMEOUT) as connection:
        connection.ensure_connection(max_retries=1)


@router.get("/targets", summary="Tables that imports are allowed into, with their columns")
def targets(services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    with services.engine.connect() as connection:
        names = [name for name in allowed_tables(connection, services.settings)
                 if tenant.allows(name)]
        found = []
        for name in names:
            try:
                found.append(_target_view(load_target(connection, name,
                                                      services.settings.import_targets)))
            except UnknownTarget:
                continue
    return {"items": found}


def allowed_tables(connection: Any, settings: Settings) -> list[str]:
    names = []
    for entry in settings.import_targets:
        schema, table = split_name(entry)
        if table != "*":
            names.append(f"{schema}.{table}")
            continue
        rows = connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = :schema ORDER BY tablename"),
            {"schema": schema})
        names += [f"{schema}.{row.tablename}" for row in rows]
    return names


def _target_view(target: Target) -> dict[str, Any]:
    return {
        "name": target.name,
        "primary_key": list(target.primary_key),
        "unique_keys": {name: list(cols) for name, cols in target.unique_keys.items()},
        "columns": [{"name": c.name, "type": c.type, "required": c.required,
                     "nullable": c.nullable} for c in target.columns],
    }
