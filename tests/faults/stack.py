"""A database and an API of their own, for a test whose broker is private.

The session's API sweeps the shared test database for jobs it should publish; jobs that
belong to a private broker live in a private database, where no other sweeper sees them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from server.keys.keys import create_key
from tests.conftest import ENV
from tests.harness import ROOT, Database, Process, free_port, start_api
from tests.support import TEST_SCHEMA


def database_url(suffix: str) -> str:
    url = make_url(ENV["DATABASE_URL"])
    return url.set(database=f"{url.database}_{suffix}").render_as_string(hide_password=False)


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


def prepare(env: dict[str, str]) -> Database:
    """The database (created and migrated) and the broker's topology, as `make run` does."""
    done = subprocess.run(
        [sys.executable, "-m", "server.setup"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    db = Database(dsn(env["DATABASE_URL"]))
    db.execute(f"CREATE SCHEMA IF NOT EXISTS {TEST_SCHEMA}")
    return db


def api_key(env: dict[str, str]) -> str:
    """A key of this database's, for a client of an API that uses it."""
    engine = create_engine(env["DATABASE_URL"])
    try:
        with engine.begin() as connection:
            return create_key(connection, "tests", "made by a fault test", None)[1]
    finally:
        engine.dispose()


def drop(url: str) -> None:
    name = make_url(url).database
    connection = Database(dsn(ENV["DATABASE_URL"])).connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


@contextmanager
def api(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """An API process with these settings; yields its base URL."""
    port = free_port()
    process: Process = start_api(env, log_dir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
