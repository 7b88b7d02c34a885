"""The worker's PostgreSQL connection terminated in the middle of a batch, several times:
the batch rolls back whole, the job waits in the broker, comes back and resumes."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from server.loading.segment import session_name
from tests.conftest import MakeTable, StartWorker
from tests.faults.figures import NO_KEY_DDL, Figures
from tests.faults.watch import handed_on, paused_segments, rows_loaded
from tests.harness import Database, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

pytestmark = pytest.mark.faults

CUTS = 3
# Enough rows for a dozen short segments: each cut needs one segment to end and another to
# be caught in, and a job that completes first leaves the test no batch to cut.
ROWS = 250_000


# What a worker runs inside a batch's transaction: the COPY into staging, the savepoint
# around it, and the checkpoint's update.
_IN_BATCH = (
    "query LIKE 'COPY %%' OR query LIKE '%%SAVEPOINT copy_rows%%' "
    "OR query LIKE '%%SET checkpoint_offset%%'"
)


def cut_mid_batch(db: Database, application: str) -> str | None:
    """Terminate the worker's backend if it is inside a batch's transaction; say what it
    was running."""
    found = db.rows(
        "SELECT pg_terminate_backend(pid), query FROM pg_stat_activity "
        f"WHERE application_name = %s AND backend_xid IS NOT NULL AND ({_IN_BATCH})",
        (application,),
    )
    return found[0][1] if found else None


def activity(db: Database, application: str) -> list[tuple[object, ...]]:
    """What the job's sessions are doing."""
    return db.rows(
        "SELECT state, backend_xid IS NOT NULL, left(query, 80) FROM pg_stat_activity "
        "WHERE application_name = %s",
        (application,),
    )


def gone(db: Database, application: str) -> bool:
    return not db.value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND backend_xid IS NOT NULL",
        (application,),
    )


def staged_and_counted(db: Database, job_id: str) -> tuple[int, int]:
    """Rows in the job's staging table and the job's own count, in one snapshot."""
    found: tuple[int, int] = db.rows(
        f"SELECT (SELECT count(*) FROM import_staging.job_{uuid.UUID(job_id).hex}), "
        "rows_loaded FROM import_jobs WHERE id = %s",
        (job_id,),
    )[0]
    return found


def test_worker_connections_cut_mid_batch_are_retried_and_the_job_resumes_exactly(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    figures: Figures,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(ROWS))
    target, reference = table(NO_KEY_DDL), db.reference(table(NO_KEY_DDL), content)
    job_id = upload(client, content, target).json()["id"]
    # A job's database session carries its name: only its connections are cut.
    application = session_name(uuid.UUID(job_id))
    worker = workers(batch_rows=500, segment_seconds=0.2, one_transaction_max_bytes=0)

    cut_during = []
    for _ in range(CUTS):
        _, paused = paused_segments(db, job_id)
        # A continuation starts from a clean slate of retries: wait for one after each cut.
        wait_until(lambda: handed_on(db, job_id, paused), 60, "no segment ended")  # noqa: B023
        cut_during.append(
            wait_until(
                lambda: cut_mid_batch(db, application),
                60,
                lambda: (
                    f"the worker never was inside a batch: {activity(db, application)}, "
                    f"job {paused_segments(db, job_id)}, {rows_loaded(db, job_id)} rows loaded"
                ),
                every=0.005,
            )
        )
        wait_until(lambda: gone(db, application), 10)
        staged, counted = staged_and_counted(db, job_id)
        assert staged == counted, "a batch is staged whole or not at all"

    final = wait_for_job(client, job_id, timeout=180)
    assert final["status"] == "completed", final
    assert (final["rows_loaded"], final["rows_refused"]) == (ROWS, 0)
    figures.check_exact(db, target, reference)
    assert len(re.findall(r"retry 1 in \d+s", worker.log())) == CUTS, cut_during
    figures.add(connections_terminated=CUTS)
