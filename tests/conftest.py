"""Fixtures for tests against the real PostgreSQL, Redis and RabbitMQ on localhost.

Tests use their own database, RabbitMQ virtual host and Redis database, so they never
touch what `make run` uses. Each test gets its own target tables and a clean queue. The
API is called with real keys, made by the same code as the operator's command.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from hypothesis import HealthCheck, settings
from kombu import Connection
from sqlalchemy.engine import make_url

from tests import harness
from tests.harness import ROOT, Database, Process, bearer, free_port, start_api, start_worker
from tests.support import CUSTOMERS_DDL, TEST_SCHEMA

ARTIFACTS = ROOT / "test-artifacts"
API_PORT = free_port()
ENV = {
    "DATABASE_URL": os.environ.get(
        "TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/csv_import_test"
    ),
    "BROKER_URL": os.environ.get(
        "TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/csv_import_test"
    ),
    "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "UPLOAD_DIR": str(ARTIFACTS / "uploads"),
    "IMPORT_TARGETS": f"public.customers,{TEST_SCHEMA}.*",
    "MAX_UPLOAD_BYTES": str(20 * 1024 * 1024),
    "API_PORT": str(API_PORT),
    "PUBLISH_SWEEP_SECONDS": "1",
    "PUBLISH_GRACE_SECONDS": "2",
    "SECRET_KEY": secrets.token_urlsafe(32),
    # Setup writes a first key here; never over the key of a developer's own install.
    "API_KEY_FILE": str(ARTIFACTS / "api-key"),
    # The tests use the services that run; they never start their own by surprise.
    "START_SERVICES": "never",
    # Tests leave jobs queued on purpose (no worker, a purged queue): the sweeper must not
    # publish them again in the middle of later tests. test_workers.py runs its own API with
    # a short LOST_AFTER_SECONDS, on a database of its own.
    "LOST_AFTER_SECONDS": str(30 * 24 * 3600),
    # The samples of every process the tests start, summed by the API's /metrics.
    "METRICS_DIR": str(ARTIFACTS / "metrics"),
    "METRICS_CACHE_SECONDS": "0",
}
# Property tests: a quick run by default, many more examples with --hypothesis-profile=long.
settings.register_profile(
    "quick", max_examples=150, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile("quick")

# Settings are read from the environment: set it before anything imports them.
os.environ.update(ENV)
# Each run counts from nothing (processes of an earlier run left their samples here).
shutil.rmtree(ENV["METRICS_DIR"], ignore_errors=True)

from server import setup  # noqa: E402
from server.db import READING  # noqa: E402
from server.messaging import topology  # noqa: E402
from server.settings import get_settings  # noqa: E402
from tests.s3server import s3  # noqa: E402, F401 - the S3 server, for the tests that need one


def stored_files() -> set[Path]:
    """What the API holds in its upload directory: a refused upload must leave nothing."""
    return set(Path(ENV["UPLOAD_DIR"]).glob("*"))


@pytest.fixture(scope="session")
def log_dir() -> Path:
    path = ARTIFACTS / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def prepared() -> None:
    get_settings.cache_clear()
    assert setup.main() == 0, "the test services are not ready (see above)"
    Database(ENV["DATABASE_URL"]).execute(f"CREATE SCHEMA IF NOT EXISTS {TEST_SCHEMA}")


@pytest.fixture(scope="module")
def session(db: Database) -> Iterator[Any]:
    """A connection set as the workers' are (time zone, date order), to ask PostgreSQL how
    it reads a value."""
    connection = psycopg2.connect(db.dsn, options=READING)
    connection.autocommit = True
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def db(prepared: None) -> Database:
    return Database(ENV["DATABASE_URL"])


@pytest.fixture(scope="session")
def api_process(prepared: None, log_dir: Path) -> Iterator[Process]:
    process = start_api(dict(os.environ), log_dir, API_PORT)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api(api_process: Process) -> str:
    return f"http://127.0.0.1:{API_PORT}"


MakeKey = Callable[..., str]


@pytest.fixture(scope="session")
def make_key(prepared: None) -> MakeKey:
    """A new API key for a tenant (limited to some targets, if given)."""

    def make(tenant: str = "tests", targets: list[str] | None = None) -> str:
        return harness.make_key(ENV["DATABASE_URL"], tenant, targets)

    return make


@pytest.fixture(scope="session")
def api_key(make_key: MakeKey) -> str:
    return make_key("tests")


@pytest.fixture
def client(api: str, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, headers=bearer(api_key), timeout=60) as http:
        yield http


@pytest.fixture
def broker(prepared: None) -> Iterator[Connection]:
    """A connection to the test virtual host, with the work and dead queues empty."""
    with Connection(ENV["BROKER_URL"]) as connection:
        purge(connection)
        yield connection
        purge(connection)


def purge(connection: Connection) -> None:
    for queue in topology.build(get_settings()).queues:
        queue(connection.default_channel).purge()


StartWorker = Callable[..., Process]


@pytest.fixture
def workers(broker: Connection, log_dir: Path) -> Iterator[StartWorker]:
    """Start real Celery workers (prefork), each with its own settings if asked."""
    started: list[Process] = []

    def start(concurrency: int = 1, queue: str | None = None, **settings: Any) -> Process:
        env = dict(os.environ, **{name.upper(): str(value) for name, value in settings.items()})
        worker = start_worker(env, log_dir, concurrency, [queue] if queue else [])
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def worker(workers: StartWorker) -> Process:
    return workers()


@pytest.fixture
def fresh_database(prepared: None) -> Iterator[str]:
    """A database of its own, dropped after the test."""
    name = f"csv_import_fresh_{uuid.uuid4().hex[:8]}"
    server = Database(ENV["DATABASE_URL"])
    server.execute(f"CREATE DATABASE {name}")
    yield make_url(ENV["DATABASE_URL"]).set(database=name).render_as_string(hide_password=False)
    server.execute(f"DROP DATABASE {name} WITH (FORCE)")


MakeTable = Callable[..., str]


@pytest.fixture
def table(db: Database) -> Iterator[MakeTable]:
    """Create target tables in the test schema; dropped after the test."""
    made: list[str] = []

    def make(ddl: str = CUSTOMERS_DDL, name: str | None = None) -> str:
        qualified = f"{TEST_SCHEMA}.{name or 't_' + uuid.uuid4().hex[:10]}"
        db.execute(f"CREATE TABLE {qualified} {ddl}")
        made.append(qualified)
        return qualified

    yield make
    for qualified in made:
        db.execute(f"DROP TABLE IF EXISTS {qualified} CASCADE")


@dataclass(frozen=True)
class Pair:
    """A target table, and beside it the same file loaded by PostgreSQL's own COPY: what an
    import into the target must equal."""

    target: str
    reference: str
    db: Database

    def equal(self) -> bool:
        """Both hold the same rows, each as many times (tables without a key too)."""
        return self.db.fingerprint(self.target) == self.db.fingerprint(self.reference)


MakePair = Callable[..., Pair]


@pytest.fixture
def pair(table: MakeTable, db: Database) -> MakePair:
    def make(content: bytes, ddl: str = CUSTOMERS_DDL) -> Pair:
        return Pair(table(ddl), db.reference(table(ddl), content), db)

    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The unit tier (`-m unit`, `make test-fast`): tests that need none of the services."""
    for item in items:
        if "prepared" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.unit)
