"""How the service's processes log: readable text by default, JSON lines with
`LOG_FORMAT=json`, and on every line about a job its job id, tenant and request id.

The fields live in one context variable holding a dict per request or task. `scope()` opens
a fresh dict; `bind()` adds to the dict in place, so a field bound in a worker thread of the
request (FastAPI's sync dependencies run there, on a copy of the context) still reaches
every later line of that request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

from server.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_fields: ContextVar[dict[str, str] | None] = ContextVar("log_fields", default=None)


@contextlib.contextmanager
def scope(**fields: str) -> Iterator[dict[str, str]]:
    """A request or a task: its own fields, gone when it ends."""
    token = _fields.set(dict(fields))
    try:
        yield _fields.get() or {}
    finally:
        _fields.reset(token)


def bind(**fields: object) -> None:
    """Add fields to the current scope's lines (nothing outside a scope)."""
    current = _fields.get()
    if current is not None:
        current.update({name: str(value) for name, value in fields.items()})


class ContextFields(logging.Filter):
    """Puts the scope's fields on every record (JSON shows them; text ignores them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_fields.get() or {}).items():
            setattr(record, name, value)
        record.__dict__.pop("color_message", None)  # uvicorn's copy with terminal colours
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "{levelname}{name}{process}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC
        )
    return logging.Formatter(TEXT_FORMAT)


def say(message: str, _stream: object = None) -> None:
    """A line a signal handler writes (Celery's "warm shutdown"), as a JSON object: no
    logging locks, one write."""
    line = {
        "time": datetime.now(UTC).isoformat(),
        "level": "WARNING",
        "logger": "celery.apps.worker",
        "process": os.getpid(),
        "message": message.strip(),
    }
    os.write(sys.__stderr__.fileno() if sys.__stderr__ else 2, (json.dumps(line) + "\n").encode())


def configure(settings: Settings) -> None:
    """One handler on the root logger; the servers' own loggers (uvicorn's) pass to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(ContextFields())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    if settings.log_format == "json":
        logging.captureWarnings(True)  # a warning is a line like any other
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).handlers = []
            logging.getLogger(name).propagate = True
