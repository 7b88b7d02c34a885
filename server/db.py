"""Engines. Each process makes its own: a connection must never cross a fork."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from server.settings import Settings


def api_engine(settings: Settings) -> Engine:
    return create_engine(settings.database_url, pool_pre_ping=True, pool_size=10)


def worker_engine(settings: Settings) -> Engine:
    """No pool: a segment's connection holds the job's advisory lock, and closing the
    connection is what guarantees the lock is released, whatever happened."""
    timeout_ms = settings.statement_timeout_seconds * 1000
    return create_engine(
        settings.database_url,
        poolclass=NullPool,
        # UTC: a timestamp without a zone in a file means the same on every server (the
        # careful path says so explicitly; COPY of a plain run reads it in this zone).
        connect_args={"options": f"-c statement_timeout={timeout_ms} -c timezone=UTC"},
    )
