"""RabbitMQ restarted (`rabbitmqctl stop_app` / `start_app`) while jobs wait in its queue,
and while one of them runs: the API and the workers reconnect by themselves, and every job
lands exactly once. An API started while the broker is away takes uploads all the same."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kombu import Connection

from server.messaging import topology
from server.settings import get_settings
from tests.conftest import StartWorker
from tests.faults import stack
from tests.faults.figures import NO_KEY_DDL, Figures
from tests.faults.services import PrivateRabbit
from tests.harness import Database, bearer, wait_until
from tests.support import (
    CUSTOMER_COLUMNS,
    TEST_SCHEMA,
    csv_bytes,
    customer_rows,
    upload,
    wait_for_job,
)

pytestmark = pytest.mark.faults

BIG, SMALL = 200_000, 5_000
# Longer than the API's bounded publish retries: an upload while the broker is away is
# committed but not published, and its job must be published by the sweeper later.
DOWN_SECONDS = 5


@pytest.fixture
def broker_env(private_rabbit: PrivateRabbit) -> Iterator[dict[str, str]]:
    url = stack.database_url("broker")
    env = dict(os.environ, BROKER_URL=private_rabbit.url, DATABASE_URL=url)
    yield env
    stack.drop(url)


class Imports:
    """Files with known rows, their targets and PostgreSQL's own COPY of each."""

    def __init__(self, db: Database, http: httpx.Client) -> None:
        self.db, self.http = db, http
        self.jobs: dict[str, tuple[str, str, int]] = {}

    def upload(self, rows: int, start: int = 1) -> str:
        content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(rows, start))
        name = f"t_{len(self.jobs)}_{os.getpid()}"
        target, reference = f"{TEST_SCHEMA}.{name}", f"{TEST_SCHEMA}.{name}_ref"
        for table in (target, reference):
            self.db.execute(f"DROP TABLE IF EXISTS {table}")
            self.db.execute(f"CREATE TABLE {table} {NO_KEY_DDL}")
        self.db.reference(reference, content)
        response = upload(self.http, content, target)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        self.jobs[job_id] = (target, reference, rows)
        return job_id

    def status(self, job_id: str) -> str:
        status: str = self.db.value("SELECT status FROM import_jobs WHERE id = %s", (job_id,))
        return status

    def rows_loaded(self, job_id: str) -> int:
        loaded: int = self.db.value("SELECT rows_loaded FROM import_jobs WHERE id = %s", (job_id,))
        return loaded


def restart(broker: PrivateRabbit, down: float = 1.0) -> None:
    broker.stop_app()
    time.sleep(down)
    broker.start_app()


def test_rabbitmq_restarted_while_jobs_wait_and_while_one_runs_every_job_lands_once(
    private_rabbit: PrivateRabbit,
    broker_env: dict[str, str],
    workers: StartWorker,
    log_dir: Path,
    figures: Figures,
) -> None:
    db = stack.prepare(broker_env)
    headers = bearer(stack.api_key(broker_env))
    with (
        stack.api(broker_env, log_dir) as base,
        httpx.Client(base_url=base, headers=headers, timeout=60) as http,
    ):
        imports = Imports(db, http)
        big = imports.upload(BIG)
        for start in (1, 10_001):
            imports.upload(SMALL, start)
        restart(private_rabbit)  # the jobs wait in the queue

        workers(
            broker_url=private_rabbit.url,
            database_url=broker_env["DATABASE_URL"],
            batch_rows=200,
            segment_seconds=0.5,
            one_transaction_max_bytes=0,
        )
        wait_until(lambda: imports.rows_loaded(big), 60, "the big job did not start")
        private_rabbit.stop_app()  # while one job runs
        imports.upload(SMALL, 20_001)  # accepted while the broker is away
        time.sleep(DOWN_SECONDS)
        private_rabbit.start_app()

        # Once the worker is back and the job moves on, once more.
        loaded = imports.rows_loaded(big)
        wait_until(lambda: imports.rows_loaded(big) > loaded, 90, "the worker did not come back")
        assert imports.status(big) == "running", "the big job ended too soon: make it larger"
        restart(private_rabbit)

        finished = {job_id: wait_for_job(http, job_id, timeout=240) for job_id in imports.jobs}
    for job_id, (target, reference, rows) in imports.jobs.items():
        job = finished[job_id]
        assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", rows, 0), (
            job
        )
        figures.check_exact(db, target, reference)
    figures.add(broker_restarts=3)


def forget_topology(broker: PrivateRabbit) -> None:
    """The broker as a fresh node has it: none of the service's exchanges and queues."""
    built = topology.build(get_settings())
    with Connection(broker.url) as connection:
        channel = connection.default_channel
        for queue in built.queues:
            queue(channel).delete()
        for exchange in built.exchanges:
            exchange(channel).delete()


def test_an_api_started_without_the_broker_takes_uploads_that_land_once_it_is_back(
    private_rabbit: PrivateRabbit,
    broker_env: dict[str, str],
    workers: StartWorker,
    log_dir: Path,
    figures: Figures,
) -> None:
    db = stack.prepare(broker_env)
    headers = bearer(stack.api_key(broker_env))
    forget_topology(private_rabbit)
    private_rabbit.stop_app()
    with (
        stack.api(broker_env, log_dir) as base,
        httpx.Client(base_url=base, headers=headers, timeout=60) as http,
    ):
        down = http.get("/health")
        scraped = http.get("/metrics")
        imports = Imports(db, http)
        job_id = imports.upload(SMALL)  # 202, or it fails here
        waiting = imports.status(job_id)

        private_rabbit.start_app()
        workers(broker_url=private_rabbit.url, database_url=broker_env["DATABASE_URL"])
        job = wait_for_job(http, job_id, timeout=120)
        up = http.get("/health")

    assert down.status_code == 503
    assert not down.json()["checks"]["rabbitmq"]["ok"], down.json()
    assert down.json()["checks"]["postgresql"]["ok"]
    # The scrape still answers, with the database's figures, and says the broker is away.
    assert scraped.status_code == 200
    assert re.search(r"^csv_import_broker_up 0(\.0)?$", scraped.text, re.MULTILINE)
    assert 'csv_import_jobs{status="' in scraped.text
    assert waiting == "queued"
    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", SMALL, 0)
    assert up.status_code == 200
    target, reference, _ = imports.jobs[job_id]
    figures.check_exact(db, target, reference)
