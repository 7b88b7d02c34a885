"""Fair sharing: a tenant over TENANT_MAX_RUNNING has its next job wait in the broker (a
wait queue, not a sleeping worker, not a retry), so that another tenant's job starts first.

The test runs its own API on a database and a virtual host of its own, with one running
job per tenant and short segments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from server.jobs.migrate import upgrade
from server.settings import Settings
from tests.broker import empty, vhost_beside
from tests.conftest import StartWorker
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

SEGMENT_SECONDS = 2


@dataclass(frozen=True)
class Site:
    url: str
    database: Database
    settings: dict[str, str]

    def client(self, tenant: str) -> httpx.Client:
        key = make_key(self.settings["database_url"], tenant)
        return httpx.Client(base_url=self.url, headers=bearer(key), timeout=120)


@pytest.fixture
def site(fresh_database: str, log_dir: Path) -> Iterator[Site]:
    upgrade(fresh_database)
    database = Database(fresh_database)
    database.execute(f"CREATE SCHEMA {TEST_SCHEMA}")
    broker_url = vhost_beside("_fair")
    settings = {
        "database_url": fresh_database,
        "broker_url": broker_url,
        "tenant_max_running": "1",
        "tenant_wait_seconds": "1",
        "segment_seconds": str(SEGMENT_SECONDS),
        "batch_rows": "2000",
        "one_transaction_max_bytes": "0",
        "express_max_bytes": "0",
    }
    typed = Settings(**settings)  # type: ignore[arg-type]
    empty(typed)
    env = dict(os.environ, **{name.upper(): value for name, value in settings.items()})
    port = free_port()
    api = start_api(env, log_dir, port)
    try:
        yield Site(f"http://127.0.0.1:{port}", database, settings)
    finally:
        api.stop()


def started_after(job: dict[str, object]) -> float:
    created = datetime.fromisoformat(str(job["created_at"]))
    started = datetime.fromisoformat(str(job["started_at"]))
    return (started - created).total_seconds()


def test_twenty_jobs_of_one_tenant_do_not_hold_up_another_tenants_job(
    site: Site, workers: StartWorker
) -> None:
    for n in range(21):
        site.database.execute(f"CREATE TABLE {TEST_SCHEMA}.t{n} {CUSTOMERS_DDL}")
    big = csv_bytes(CUSTOMER_COLUMNS, customer_rows(30_000))
    with site.client("busy") as busy, site.client("other") as other:
        jobs = [upload(busy, big, f"{TEST_SCHEMA}.t{n}").json()["id"] for n in range(20)]
        workers(concurrency=2, **site.settings)
        # Behind the twenty in the queue, with a worker process busy with one of them.
        wait_until(
            lambda: busy.get(f"/imports/{jobs[0]}").json()["status"] == "running", 60, "idle"
        )
        small = csv_bytes(CUSTOMER_COLUMNS, customer_rows(2_000))
        theirs = upload(other, small, f"{TEST_SCHEMA}.t20").json()["id"]
        done = wait_for_job(other, theirs, timeout=120)
        assert done["status"] == "completed"
        # It started within one segment of its upload, however many jobs were ahead of it.
        assert started_after(done) <= SEGMENT_SECONDS + 1.5, started_after(done)
        # The busy tenant's jobs ran one at a time, and all complete, none counted a retry.
        finished = [wait_for_job(busy, job, timeout=300) for job in jobs]
    assert {job["status"] for job in finished} == {"completed"}
    overlapping = site.database.value(
        "SELECT count(*) FROM import_segments a JOIN import_segments b "
        "ON a.id < b.id AND a.job_id <> b.job_id "
        "AND a.started_at < b.finished_at AND b.started_at < a.finished_at "
        "JOIN import_jobs ja ON ja.id = a.job_id JOIN import_jobs jb ON jb.id = b.job_id "
        "WHERE ja.tenant = 'busy' AND jb.tenant = 'busy'"
    )
    assert overlapping == 0
    assert site.database.value("SELECT max(retries) FROM import_jobs") == 0
