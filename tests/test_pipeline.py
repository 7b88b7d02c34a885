"""End to end: the API, a real Celery worker, RabbitMQ and PostgreSQL, exactly once."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection

from server.api import sweeper
from server.api.app import make_services
from server.messaging.publish import publish_job
from server.messaging.topology import EXPRESS_QUEUE
from server.settings import Settings
from tests.broker import dead_letters, message_count
from tests.conftest import ENV, MakeTable, StartWorker
from tests.harness import ROOT, Database, Process, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job


def test_a_100k_row_file_lands_exactly_once(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(100_000))
    target, reference = table(), db.reference(table(), content)

    response = upload(client, content, target)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["url"].endswith(f"/imports/{accepted['id']}")
    assert accepted["events_url"].startswith(f"{accepted['url']}/events?token=")
    assert accepted["errors_url"].endswith("/errors")

    job = wait_for_job(client, accepted["id"])
    assert job["status"] == "completed", job
    assert (job["rows_loaded"], job["rows_refused"], job["rows_published"]) == (100_000, 0, 100_000)
    assert job["bytes_done"] == job["bytes_total"] == len(content)
    assert db.checksum(target) == db.checksum(reference)
    assert (
        db.value(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'import_staging' AND tablename = %s",
            (f"job_{accepted['id'].replace('-', '')}",),
        )
        == 0
    )


def test_a_worker_killed_mid_import_loses_and_duplicates_nothing(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    rows = 200_000
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(rows))
    target, reference = table(), db.reference(table(), content)
    first = workers(batch_rows=500, one_transaction_max_bytes=0)
    job_id = upload(client, content, target).json()["id"]

    loaded_at_kill = wait_until(
        lambda: db.value("SELECT rows_loaded FROM import_jobs WHERE id = %s", (job_id,)),
        60,
        "no batch was committed",
    )
    first.kill(signal.SIGKILL)
    assert loaded_at_kill < rows, "the import ended before the kill: make the file larger"
    checkpoint = db.value("SELECT checkpoint_line FROM import_jobs WHERE id = %s", (job_id,))
    assert db.value("SELECT count(*) FROM " + target) == 0, "the target is touched only at the end"

    workers(batch_rows=500, one_transaction_max_bytes=0)
    job = wait_for_job(client, job_id)
    assert job["status"] == "completed", job
    assert (job["rows_loaded"], job["rows_refused"]) == (rows, 0)
    assert db.checksum(target) == db.checksum(reference)
    starts = [
        line
        for (line,) in db.rows(
            "SELECT start_line FROM import_segments WHERE job_id = %s ORDER BY id", (job_id,)
        )
    ]
    assert starts[0] == 2
    assert starts[1] == checkpoint > 2, "the new worker resumed at the checkpoint, not line 1"


def test_a_job_longer_than_a_segment_goes_on_through_continuations(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(30_000))
    target, reference = table(), db.reference(table(), content)
    workers(batch_rows=1000, segment_seconds=0.01, one_transaction_max_bytes=0)

    job_id = upload(client, content, target).json()["id"]
    job = wait_for_job(client, job_id)

    assert job["status"] == "completed", job
    assert db.checksum(target) == db.checksum(reference)
    outcomes = [
        o
        for (o,) in db.rows(
            "SELECT outcome FROM import_segments WHERE job_id = %s ORDER BY id", (job_id,)
        )
    ]
    assert len(outcomes) >= 10
    assert outcomes == ["paused"] * (len(outcomes) - 1) + ["completed"]


def test_a_failed_import_leaves_the_target_untouched_and_the_message_dead(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    broker: Connection,
) -> None:
    target = table()
    db.execute(f"INSERT INTO {target} (id, email) VALUES (1, 'kept@example.com')")
    before = db.checksum(target)
    job_id = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(50)), target).json()["id"]
    Path(ENV["UPLOAD_DIR"], f"{job_id}.csv").unlink()

    workers()
    job = wait_for_job(client, job_id)

    assert job["status"] == "failed"
    assert "file is gone" in job["error"]
    assert db.checksum(target) == before
    dead = wait_until(
        lambda: [d for d in dead_letters(broker) if d.job_id == job_id],
        30,
        "the failed job's message never reached imports.dead",
    )
    assert dead[0].reason == "rejected"


def test_database_refusals_become_refused_rows_and_the_rest_lands(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    target = table("(id bigint PRIMARY KEY, email text NOT NULL CHECK (email LIKE '%@%'))")
    db.execute(f"INSERT INTO {target} VALUES (3, 'old@example.com')")
    content = b"id,email\n1,a@x\n2,b@x\n3,taken@x\n2,again@x\n4,no-at-sign\n5,e@x\n"

    job = wait_for_job(client, upload(client, content, target).json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 3, 3)
    assert db.rows(f"SELECT id, email FROM {target} ORDER BY id") == [
        (1, "a@x"),
        (2, "b@x"),
        (3, "old@example.com"),
        (5, "e@x"),
    ]
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["code"], r["raw"]) for r in refused] == [
        (4, "duplicate_key", "3,taken@x"),
        (5, "duplicate_key", "2,again@x"),
        (6, "check_violation", "4,no-at-sign"),
    ]


def test_upsert_updates_rows_inserts_new_ones_and_a_rerun_leaves_the_same_rows(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    target = table("(id int PRIMARY KEY, name text, score int)")
    db.execute(f"INSERT INTO {target} VALUES (1, 'same', 1), (2, 'old', 2)")
    content = b"id,name,score\n1,same,1\n2,new,20\n3,added,3\n"

    first = wait_for_job(client, upload(client, content, target, mode="upsert").json()["id"])
    again = wait_for_job(client, upload(client, content, target, mode="upsert").json()["id"])

    # Each line is written once, as an insert or an update: the count PostgreSQL reports is
    # then the lines that landed, and the job can check it.
    assert (first["status"], first["rows_published"]) == ("completed", 3)
    assert (again["status"], again["rows_published"]) == ("completed", 3)
    assert db.rows(f"SELECT * FROM {target} ORDER BY id") == [
        (1, "same", 1),
        (2, "new", 20),
        (3, "added", 3),
    ]


def test_the_demo_file_imports_out_of_the_box(
    client: httpx.Client, worker: Process, db: Database
) -> None:
    db.execute("TRUNCATE public.customers")
    content = (ROOT / "server" / "demo" / "customers.csv").read_bytes()

    job = wait_for_job(client, upload(client, content, "customers").json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 198, 2)
    assert db.value("SELECT count(*) FROM public.customers") == 198
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["column"], r["code"]) for r in refused] == [
        (69, "signup_date", "not_date"),
        (151, "balance", "not_number"),
    ]


def test_a_job_the_api_committed_but_never_published_is_published_by_the_sweeper(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    broker: Connection,
) -> None:
    target = table()
    job_id = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(10)), target).json()["id"]
    # The state a crash between commit and publish leaves: a queued job and no message.
    wait_until(lambda: message_count(broker, EXPRESS_QUEUE) == 1, 10)
    channel: Any = broker.default_channel
    channel.queue_purge(EXPRESS_QUEUE)
    db.execute(
        "UPDATE import_jobs SET published_at = NULL, created_at = now() - interval "
        "'1 minute' WHERE id = %s",
        (job_id,),
    )

    wait_until(lambda: message_count(broker, EXPRESS_QUEUE) == 1, 30, "the sweeper never published")
    workers()

    job = wait_for_job(client, job_id)
    assert (job["status"], job["rows_loaded"]) == ("completed", 10)
    assert db.value("SELECT published_at IS NOT NULL FROM import_jobs WHERE id = %s", (job_id,))


def test_a_publish_that_fails_midway_through_a_sweep_keeps_the_ones_before_it_published(
    client: httpx.Client,
    table: MakeTable,
    db: Database,
    broker: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three jobs to publish; the broker fails the second: the first stays published (not
    sent again at the next sweep), the others go out then."""
    target = table()
    ids = [
        upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(5)), target).json()["id"]
        for _ in range(3)
    ]
    wait_until(lambda: message_count(broker, EXPRESS_QUEUE) == 3, 10)
    channel: Any = broker.default_channel
    channel.queue_purge(EXPRESS_QUEUE)
    # Committed, never published; the API's own sweeper waits PUBLISH_GRACE_SECONDS for them.
    db.execute(
        "UPDATE import_jobs SET published_at = NULL, created_at = now() WHERE id = ANY(%s::uuid[])",
        (ids,),
    )
    services = make_services(Settings(publish_grace_seconds=0))
    sent: list[str] = []

    def flaky(app: Any, job_id: Any, **options: Any) -> None:
        if len(sent) == 1 and str(job_id) not in sent:
            sent.append("refused")
            raise ConnectionError("the broker went away")
        publish_job(app, job_id, **options)
        sent.append(str(job_id))

    monkeypatch.setattr(sweeper, "publish_job", flaky)
    try:
        with pytest.raises(ConnectionError):
            sweeper.sweep_once(services)
        assert sweeper.sweep_once(services) == 2
    finally:
        services.engine.dispose()

    assert message_count(broker, EXPRESS_QUEUE) == 3, "each job was sent once"
    assert sorted(s for s in sent if s != "refused") == sorted(ids)
    assert (
        db.value(
            "SELECT count(*) FROM import_jobs WHERE id = ANY(%s::uuid[]) AND published_at IS NULL",
            (ids,),
        )
        == 0
    )


def test_a_cancelled_job_stops_at_its_next_batch_and_leaves_the_target_untouched(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    target = table()
    job_id = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(200_000)), target).json()[
        "id"
    ]
    workers(batch_rows=500, one_transaction_max_bytes=0)
    wait_until(
        lambda: db.value("SELECT rows_loaded FROM import_jobs WHERE id = %s", (job_id,)),
        60,
        "no batch was committed",
    )

    assert client.post(f"/imports/{job_id}/cancel").status_code == 202
    job = wait_for_job(client, job_id)

    assert job["status"] == "cancelled"
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    after = wait_for_job(
        client, upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(5)), target).json()["id"]
    )
    assert (after["status"], after["rows_loaded"]) == ("completed", 5), "the worker is free"


def test_a_queued_job_is_cancelled_at_once(
    client: httpx.Client, broker: Connection, table: MakeTable
) -> None:
    job_id = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(5)), table()).json()["id"]
    cancelled = client.post(f"/imports/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    events = client.get(f"/imports/{job_id}/events").text
    assert "event: cancelled" in events
