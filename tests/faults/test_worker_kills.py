"""Workers killed with SIGKILL at random moments, again and again, within one import."""

from __future__ import annotations

import gzip
import random
import signal
import time
import uuid

import httpx
import pytest

from server.jobs.status import FINISHED
from server.loading.segment import session_name
from tests.conftest import MakeTable, StartWorker
from tests.faults.figures import NO_KEY_DDL, Figures
from tests.faults.watch import handed_on, paused_segments, rows_loaded
from tests.harness import Database, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

pytestmark = pytest.mark.faults

KILLS = 12
# Twelve kills must land before the end, and a worker has been seen to load 25,000 rows
# between two of them: the file is sent gzipped (10 MB) to fit the tests' MAX_UPLOAD_BYTES.
ROWS = 600_000
# Many small commits and short segments: a kill lands between commits, inside a batch's
# COPY, inside a checkpoint, inside a continuation's publish, or inside the final publish.
# Many short segments, staged from the first attempt: many checkpoints to land between.
SMALL = {"batch_rows": 100, "segment_seconds": 0.2, "one_transaction_max_bytes": 0}


def test_a_worker_killed_a_dozen_times_within_one_import_loses_and_duplicates_nothing(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    rng: random.Random,
    figures: Figures,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(ROWS))
    target, reference = table(NO_KEY_DDL), db.reference(table(NO_KEY_DDL), content)
    job_id = upload(client, gzip.compress(content, 1), target, "data.csv.gz").json()["id"]

    for kills in range(KILLS):
        _, before = paused_segments(db, job_id)
        worker = workers(**SMALL)
        # Once this worker has handed a segment on, the message it was given is acked: no
        # message is redelivered so often that the broker dead-letters it.
        status = wait_until(
            lambda: handed_on(db, job_id, before),  # noqa: B023
            60,
            "no segment ended",
        )
        assert status not in FINISHED, (
            f"the import ended after {kills} kills, with {rows_loaded(db, job_id)} rows "
            f"loaded: make the file larger (seed {figures.seed})"
        )
        time.sleep(rng.uniform(0, 0.6))
        worker.kill(signal.SIGKILL)
        if paused_segments(db, job_id)[0] != "completed":
            assert db.value(f"SELECT count(*) FROM {target}") == 0, "the target waits for the end"

    workers(batch_rows=2000)
    final = wait_for_job(client, job_id, timeout=180)
    assert final["status"] == "completed", final
    assert (final["rows_loaded"], final["rows_refused"]) == (ROWS, 0)
    figures.check_exact(db, target, reference)
    figures.add(worker_kills=KILLS)


def test_a_worker_killed_inside_a_long_statement_leaves_its_job_to_the_next_worker(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    figures: Figures,
) -> None:
    """The broker gives a dead worker's job to another worker at once, while PostgreSQL may
    still be running the dead worker's last statement and so still holds the job's lock."""
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(20_000))
    target, reference = table(NO_KEY_DDL), db.reference(table(NO_KEY_DDL), content)
    holder = db.connect()
    holder.autocommit = False
    # The final publish into the target waits for this lock: a statement that lasts.
    holder.cursor().execute(f"LOCK TABLE {target} IN SHARE MODE")
    try:
        job_id = upload(client, content, target).json()["id"]
        application = session_name(uuid.UUID(job_id))
        first = workers()
        wait_until(
            lambda: db.value(
                "SELECT count(*) FROM pg_stat_activity WHERE "
                "application_name = %s AND wait_event_type = 'Lock'",
                (application,),
            ),
            60,
            "the final publish never waited",
        )
        # The next worker waits for the job's lock for less time than the statement lasts:
        # PostgreSQL must notice that the dead worker is gone and let the lock go.
        workers(lock_wait_seconds=3)
        first.kill(signal.SIGKILL)
        time.sleep(6)
    finally:
        holder.rollback()
        holder.close()

    final = wait_for_job(client, job_id, timeout=60)
    assert (final["status"], final["rows_loaded"]) == ("completed", 20_000), final
    figures.check_exact(db, target, reference)
    figures.add(worker_kills=1)
