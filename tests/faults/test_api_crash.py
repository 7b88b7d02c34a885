"""The API killed after it committed a job and before it published the job's message:
another API's sweeper publishes it, and the job lands exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from kombu import Connection

from server.messaging.topology import EXPRESS_QUEUE, WORK_QUEUE
from tests.broker import message_count
from tests.conftest import MakeTable, StartWorker
from tests.faults import stack
from tests.faults.figures import NO_KEY_DDL, Figures
from tests.harness import Database, bearer, free_port, start_api, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

pytestmark = pytest.mark.faults

ROWS = 20_000


def messages(broker: Connection) -> int:
    return message_count(broker, WORK_QUEUE) + message_count(broker, EXPRESS_QUEUE)


def test_an_api_killed_between_commit_and_publish_leaves_a_job_that_is_published_later(
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    broker: Connection,
    log_dir: Path,
    figures: Figures,
    api_key: str,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(ROWS))
    target, reference = table(NO_KEY_DDL), db.reference(table(NO_KEY_DDL), content)
    port = free_port()
    crashing = start_api(dict(os.environ, CRASH_AT="after_commit"), log_dir, port)

    with (
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=bearer(api_key), timeout=60
        ) as http,
        pytest.raises(httpx.TransportError),
    ):
        upload(http, content, target)
    assert crashing.popen.wait(timeout=30) == -signal.SIGKILL
    crashing.stop()
    job_id, published = db.rows(
        "SELECT id::text, published_at FROM import_jobs WHERE target = %s", (target,)
    )[0]
    assert published is None
    assert messages(broker) == 0, "the API died before it published"

    with (
        stack.api(dict(os.environ), log_dir) as base,
        httpx.Client(base_url=base, headers=bearer(api_key), timeout=60) as http,
    ):
        wait_until(lambda: messages(broker) == 1, 30, "no sweeper published the job")
        workers()
        job = wait_for_job(http, job_id)
    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", ROWS, 0)
    figures.check_exact(db, target, reference)
    figures.add(api_kills=1)
