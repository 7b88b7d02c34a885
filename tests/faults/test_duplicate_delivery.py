"""The same job given to two workers at once: one loads it, the other leaves it alone."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from kombu import Connection

from server.messaging.topology import EXPRESS_KEY, EXPRESS_QUEUE
from tests.broker import message_count
from tests.conftest import MakeTable, StartWorker
from tests.faults.figures import NO_KEY_DDL, Figures
from tests.harness import Database, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job
from tests.test_dead_letters import publish_raw

pytestmark = pytest.mark.faults

ROWS = 150_000


def test_one_job_published_twice_to_two_workers_is_loaded_once(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    broker: Connection,
    figures: Figures,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(ROWS))
    target, reference = table(NO_KEY_DDL), db.reference(table(NO_KEY_DDL), content)
    job_id = upload(client, content, target).json()["id"]
    # The same queue as the upload's own message (a small file: the express queue), so that
    # each worker, which takes one message of a queue at a time, is given one of the two.
    publish_raw(broker, job_id, EXPRESS_KEY)
    wait_until(lambda: message_count(broker, EXPRESS_QUEUE) == 2, 10)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(
            lambda _: workers(batch_rows=500, one_transaction_max_bytes=0), range(2)
        )
    job = wait_for_job(client, job_id)
    wait_until(lambda: message_count(broker, EXPRESS_QUEUE) == 0, 30)

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", ROWS, 0)
    figures.check_exact(db, target, reference)
    runners = db.rows("SELECT worker, outcome FROM import_segments WHERE job_id = %s", (job_id,))
    assert [outcome for _, outcome in runners] == ["completed"], "one runner loaded it all"
    given = [
        len(re.findall(r"Task imports\.load\[[^]]+\] received", w.log())) for w in (first, second)
    ]
    assert given == [1, 1], "each worker was given the job once"
    logs = first.log() + second.log()
    assert "another worker holds it" in logs or "nothing to do" in logs
    figures.add(duplicate_deliveries=1)
