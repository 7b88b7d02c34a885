"""Engines. Each process makes its own: a connection must never cross a fork."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine
from sqlalchemy.pool import NullPool

from server.settings import Settings

# Every table of the service (job records, API keys); migrations create them.
metadata = MetaData()


def api_engine(settings: Settings) -> Engine:
    return create_engine(settings.database_url, pool_pre_ping=True, pool_size=10)


# How often PostgreSQL checks, while it runs a worker's statement, that the worker is still
# there. A killed worker's statement is abandoned within this time, and with it the job's
# lock, instead of running to its end for nobody (PostgreSQL 14+).
CLIENT_CHECK_MS = 1000


# How a worker's session reads values, whatever the server's defaults: a timestamp without a
# zone in a file is UTC, and dates are read in ISO order (the converters refuse the forms
# whose day-month order DateStyle would decide).
READING = "-c timezone=UTC -c datestyle=ISO,MDY"


def worker_engine(settings: Settings) -> Engine:
    """No pool: a segment's connection holds the job's advisory lock, and closing the
    connection is what guarantees the lock is released, whatever happened."""
    timeout_ms = settings.statement_timeout_seconds * 1000
    options = (
        f"-c statement_timeout={timeout_ms} "
        f"-c client_connection_check_interval={CLIENT_CHECK_MS} {READING}"
    )
    return create_engine(
        settings.database_url,
        poolclass=NullPool,
        connect_args={"options": options},
    )


def raw_cursor(connection: Connection) -> Any:
    """A psycopg2 cursor in the connection's own transaction, for COPY and statements
    composed with psycopg2.sql."""
    return connection.connection.driver_connection.cursor()  # type: ignore[union-attr]


COPY_NULL = "\\N"
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str | None) -> str:
    """A value in COPY's text format (NULL as \\N). The caller keeps NUL out: COPY cannot
    carry it."""
    if value is None:
        return COPY_NULL
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value
