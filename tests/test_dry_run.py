"""Look before you load: a dry run validates the whole file into staging and stops
(`validated`), the target untouched; a commit publishes exactly the validated rows, once;
a cancel or the expiry discards them; a failed job is retried from its checkpoint."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from server import housekeeping
from server.loading import staging
from server.settings import Settings
from server.storage import LocalStorage
from tests.conftest import ENV, MakePair, MakeTable, StartWorker
from tests.harness import Database, bearer, events, final_event, wait_until
from tests.support import (
    CUSTOMER_COLUMNS,
    CUSTOMERS_DDL,
    csv_bytes,
    customer_rows,
    upload,
    wait_for_job,
)


def rows_with_two_bad(count: int) -> list[list[str]]:
    rows = list(customer_rows(count))
    rows[10][3] = "2024-02-30"  # no such day
    rows[20][0] = rows[19][0]  # a key given twice: the later line is refused
    return rows


def staged_jobs(db: Database) -> set[uuid.UUID]:
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            return staging.staged_jobs(cursor)
    finally:
        connection.close()


def status_of(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/imports/{job_id}").json()
    return job


def wait_for_status(client: httpx.Client, job_id: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = status_of(client, job_id)
        return job if job["status"] == status else None

    found: dict[str, Any] = wait_until(reached, 120, f"job {job_id} is not {status}", every=0.1)
    return found


def validated_dry_run(client: httpx.Client, target: str) -> str:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(100))
    job_id: str = upload(client, content, target, dry_run="true").json()["id"]
    wait_for_status(client, job_id, "validated")
    return job_id


def test_a_dry_run_leaves_the_target_untouched_and_commit_lands_exactly_the_validated_rows(
    client: httpx.Client, worker: Any, table: MakeTable, db: Database
) -> None:
    target = table()
    rows = rows_with_two_bad(3_000)
    content = csv_bytes(CUSTOMER_COLUMNS, rows)
    good = csv_bytes(CUSTOMER_COLUMNS, [row for n, row in enumerate(rows) if n not in (10, 20)])
    job = upload(client, content, target, dry_run="true").json()
    stream = [event.kind for event in events(client, job["events_url"], timeout=120)]
    assert stream[-1] == "validated"  # the stream ends there, like a job end's
    validated = status_of(client, job["id"])
    assert validated["status"] == "validated"
    assert (validated["rows_loaded"], validated["rows_refused"]) == (2_998, 2)
    assert validated["rows_published"] is None
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert sorted(row["code"] for row in refused) == ["duplicate_key", "not_date"]

    committed = client.post(f"/imports/{job['id']}/commit")
    assert committed.status_code == 202, committed.text
    final = final_event(client, committed.json()["events_url"], timeout=120)
    assert final.kind == "completed"
    done = status_of(client, job["id"])
    assert (done["rows_loaded"], done["rows_refused"], done["rows_published"]) == (2_998, 2, 2_998)
    assert db.fingerprint(target) == db.fingerprint(db.reference(table(), good))
    # Committed already: a second commit answers the same, and lands nothing more.
    again = client.post(f"/imports/{job['id']}/commit")
    assert again.status_code == 202
    assert again.json()["status"] == "completed"
    assert db.value(f"SELECT count(*) FROM {target}") == 2_998


def test_two_commits_at_once_land_the_rows_once(
    client: httpx.Client, worker: Any, pair: MakePair, db: Database
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(5_000))
    tables = pair(content)
    job = upload(client, content, tables.target, dry_run="true").json()
    wait_for_status(client, job["id"], "validated")
    answers: list[int] = []

    def commit() -> None:
        answers.append(client.post(f"/imports/{job['id']}/commit").status_code)

    threads = [threading.Thread(target=commit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * 4
    assert wait_for_job(client, job["id"])["status"] == "completed"
    time.sleep(1)  # any second publish would have run by now
    assert tables.equal()
    assert (
        db.value(
            "SELECT count(*) FROM import_segments WHERE job_id = %s AND outcome = 'completed'",
            (job["id"],),
        )
        == 1
    )


def test_only_a_validated_dry_run_can_be_committed(
    client: httpx.Client, worker: Any, table: MakeTable
) -> None:
    target = table()
    plain = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(5)), target).json()
    wait_for_job(client, plain["id"])
    refused = client.post(f"/imports/{plain['id']}/commit")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_a_dry_run"


def test_a_dry_run_still_validating_cannot_be_committed(
    client: httpx.Client, broker: Any, table: MakeTable
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(5))
    job = upload(client, content, table(), dry_run="true").json()  # no worker: it waits
    refused = client.post(f"/imports/{job['id']}/commit")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_validated"
    assert refused.json()["error"]["job_status"] == "queued"


def test_a_cancelled_dry_run_discards_its_rows(
    client: httpx.Client, worker: Any, table: MakeTable, db: Database
) -> None:
    target = table()
    job_id = validated_dry_run(client, target)
    assert uuid.UUID(job_id) in staged_jobs(db)
    cancelled = client.post(f"/imports/{job_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert uuid.UUID(job_id) not in staged_jobs(db)
    assert client.post(f"/imports/{job_id}/commit").json()["error"]["code"] == "not_validated"
    assert db.value(f"SELECT count(*) FROM {target}") == 0


def test_a_validated_job_nobody_commits_expires(
    client: httpx.Client, worker: Any, table: MakeTable, db: Database
) -> None:
    target = table()
    job_id = validated_dry_run(client, target)
    settings = Settings(validated_ttl_seconds=0)
    engine = create_engine(ENV["DATABASE_URL"])
    try:
        cleaned = housekeeping.clean(engine, LocalStorage(settings.upload_dir), settings)
    finally:
        engine.dispose()
    assert cleaned.expired >= 1
    expired = status_of(client, job_id)
    assert expired["status"] == "cancelled"
    assert "VALIDATED_TTL_SECONDS" in expired["error"]
    assert db.value(f"SELECT count(*) FROM {target}") == 0


def test_a_failed_job_is_retried_from_its_checkpoint(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    target = table()
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(2_000))
    job_id = upload(client, content, target).json()["id"]
    db.execute(f"DROP TABLE {target}")  # the worker will not find it: a permanent failure
    workers()
    failed = wait_for_job(client, job_id)
    assert failed["status"] == "failed"
    db.execute(f"CREATE TABLE {target} {CUSTOMERS_DDL}")
    retried = client.post(f"/imports/{job_id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "queued"
    assert final_event(client, retried.json()["events_url"], timeout=120).kind == "completed"
    assert db.value(f"SELECT count(*) FROM {target}") == 2_000
    again = client.post(f"/imports/{job_id}/retry")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_failed"


@pytest.mark.parametrize("action", ["commit", "retry"])
def test_another_tenants_job_is_not_there(
    client: httpx.Client, make_key: Any, table: MakeTable, action: str, broker: Any
) -> None:
    job_id = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(3)), table()).json()["id"]
    key = make_key("someone-else")
    with httpx.Client(base_url=str(client.base_url), headers=bearer(key)) as other:
        assert other.post(f"/imports/{job_id}/{action}").status_code == 404
