"""Worker inspection without remote control: each worker process beats in Redis, GET
/workers (operators' keys only) shows who holds which job and drops a killed one, and the
sweeper publishes again a job whose message was lost.

Each test runs its own API, with short heartbeat windows, on a database of its own: the
sweeper there sees no job but the test's.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection

from server.api.sweeper import LOST_TOO_OFTEN
from server.jobs.migrate import upgrade
from server.settings import Settings
from tests.conftest import StartWorker, purge
from tests.harness import Database, bearer, free_port, make_key, start_api, wait_until
from tests.support import (
    CUSTOMER_COLUMNS,
    CUSTOMERS_DDL,
    TEST_SCHEMA,
    csv_bytes,
    customer_rows,
    upload,
    wait_for_job,
)

QUICK = {"worker_beat_seconds": "0.3", "worker_gone_seconds": "2", "lost_after_seconds": "2"}


@dataclass(frozen=True)
class Site:
    """An API of its own and the settings its workers must share."""

    url: str
    database: Database
    settings: dict[str, str]
    operator: str
    tenant: str

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(key), timeout=60)


@pytest.fixture
def site(fresh_database: str, broker: Connection, log_dir: Path) -> Iterator[Site]:
    upgrade(fresh_database)
    database = Database(fresh_database)
    database.execute(f"CREATE SCHEMA {TEST_SCHEMA}")
    database.execute(f"CREATE TABLE {TEST_SCHEMA}.target {CUSTOMERS_DDL}")
    database.execute(f"CREATE TABLE {TEST_SCHEMA}.reference {CUSTOMERS_DDL}")
    settings = {"database_url": fresh_database, **QUICK}
    env = dict(os.environ, **{name.upper(): value for name, value in settings.items()})
    port = free_port()
    api = start_api(env, log_dir, port)
    operator = make_key(fresh_database, "ops", operator=True)
    try:
        yield Site(f"http://127.0.0.1:{port}", database, settings, operator, "workers-tenant")
    finally:
        api.stop()


def workers_view(site: Site) -> list[dict[str, Any]]:
    with site.client(site.operator) as client:
        answer = client.get("/workers")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_workers_shows_the_holder_of_a_running_job_and_a_killed_worker_as_gone(
    site: Site, workers: StartWorker
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(200_000))
    key = make_key(site.settings["database_url"], site.tenant)
    with site.client(key) as client:
        assert client.get("/workers").json()["error"]["code"] == "operator_only"
        worker = workers(batch_rows=2_000, one_transaction_max_bytes=0, **site.settings)
        job_id = upload(client, content, f"{TEST_SCHEMA}.target").json()["id"]

        def holder() -> dict[str, Any] | None:
            held = [item for item in workers_view(site) if item["job_id"] == job_id]
            return held[0] if held and held[0]["state"] == "busy" else None

        seen = wait_until(holder, 60, "no worker is shown holding the job", every=0.2)
        assert seen["tenant"] == site.tenant
        assert seen["pid"] in worker.pids()
        worker.kill(signal.SIGKILL)

        def gone() -> bool:
            return any(
                item["pid"] == seen["pid"] and item["state"] == "gone"
                for item in workers_view(site)
            )

        wait_until(gone, 30, "the killed worker is not shown as gone", every=0.2)
        # Another worker finishes the job: its message came back when the first one died.
        workers(**site.settings)
        assert wait_for_job(client, job_id, timeout=180)["status"] == "completed"
    site.database.copy_csv(f"{TEST_SCHEMA}.reference", content)
    target = site.database.fingerprint(f"{TEST_SCHEMA}.target")
    assert target == site.database.fingerprint(f"{TEST_SCHEMA}.reference")


def test_a_job_whose_message_was_purged_is_published_again_and_lands_exactly(
    site: Site, workers: StartWorker, broker: Connection
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(5_000))
    key = make_key(site.settings["database_url"], site.tenant)
    with site.client(key) as client:
        job_id = upload(client, content, f"{TEST_SCHEMA}.target").json()["id"]
        purge(broker)  # the message is gone; nothing on the broker knows of the job
        assert client.get(f"/imports/{job_id}").json()["status"] == "queued"
        workers(**site.settings)
        job = wait_for_job(client, job_id, timeout=120)
    assert (job["status"], job["rows_loaded"]) == ("completed", 5_000)
    assert site.database.value("SELECT retries FROM import_jobs") == 1
    site.database.copy_csv(f"{TEST_SCHEMA}.reference", content)
    target = site.database.fingerprint(f"{TEST_SCHEMA}.target")
    assert target == site.database.fingerprint(f"{TEST_SCHEMA}.reference")


def test_a_job_lost_more_often_than_max_retries_fails_and_says_why(
    site: Site, broker: Connection
) -> None:
    key = make_key(site.settings["database_url"], site.tenant)
    with site.client(key) as client:
        content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(10))
        job_id = upload(client, content, f"{TEST_SCHEMA}.target").json()["id"]
        site.database.execute("UPDATE import_jobs SET retries = %s", (Settings().max_retries,))
        purge(broker)
        job = wait_for_job(client, job_id, timeout=60)
    assert (job["status"], job["error"]) == ("failed", LOST_TOO_OFTEN)
    assert site.database.value(f"SELECT count(*) FROM {TEST_SCHEMA}.target") == 0
