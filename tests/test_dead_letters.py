"""Every road to imports.dead, and the operator's way back: scripts/reprocess_dlq.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kombu import Connection, Exchange, Producer

from server.messaging.topology import EXCHANGE, RETRY_EXCHANGE, WORK_KEY, build, retry_queue_name
from server.settings import get_settings
from tests.broker import dead_letters
from tests.conftest import ENV, MakeTable, StartWorker
from tests.harness import ROOT, Database, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job


def dlq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reprocess_dlq.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
    )


def dead_jobs(broker: Connection) -> dict[str, str]:
    return {letter.job_id: letter.reason for letter in dead_letters(broker)}


def test_a_rejected_job_is_replayed_once_its_cause_is_fixed(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    broker: Connection,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(3000))
    target = table()
    job_id = upload(client, content, target).json()["id"]
    stored = Path(ENV["UPLOAD_DIR"], f"{job_id}.csv")
    aside = stored.with_suffix(".aside")
    stored.rename(aside)
    workers()
    assert wait_for_job(client, job_id)["status"] == "failed"
    wait_until(lambda: dead_jobs(broker).get(job_id) == "rejected", 30)

    listing = dlq("list")
    assert listing.returncode == 0
    assert job_id in listing.stdout
    assert "rejected" in listing.stdout
    dry = dlq("replay", "--job-id", job_id, "--dry-run")
    assert dry.returncode == 0
    assert "would have replayed 1" in dry.stdout
    assert client.get(f"/imports/{job_id}").json()["status"] == "failed"
    assert job_id in dead_jobs(broker), "a dry run changes nothing"

    aside.rename(stored)  # the cause, fixed
    replayed = dlq("replay", "--job-id", job_id)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    job = wait_for_job(client, job_id)
    assert (job["status"], job["rows_loaded"]) == ("completed", 3000)
    assert job_id not in dead_jobs(broker)
    before = db.checksum(target)

    again = dlq("replay", "--job-id", job_id)
    assert again.returncode == 0
    assert "replayed 0" in again.stdout
    assert db.checksum(target) == before


def test_a_message_that_keeps_killing_workers_dies_and_its_replay_resumes(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    broker: Connection,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(200_000))
    target, reference = table(), db.reference(table(), content)
    job_id = upload(client, content, target).json()["id"]
    worker = workers(batch_rows=500, one_transaction_max_bytes=0)

    def segments() -> int:
        return int(db.value("SELECT count(*) FROM import_segments WHERE job_id = %s", (job_id,)))

    def loaded() -> int:
        return int(db.value("SELECT rows_loaded FROM import_jobs WHERE id = %s", (job_id,)))

    for _ in range(10):
        seen, before = segments(), loaded()
        # Each delivery dies after it has committed a batch: the checkpoint moves on.
        wait_until(
            lambda: (segments() > seen and loaded() > before) or job_id in dead_jobs(broker),  # noqa: B023
            60,
        )
        if job_id in dead_jobs(broker):
            break
        child = subprocess.run(
            ["pgrep", "-P", str(worker.popen.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in child:
            os.kill(int(pid), signal.SIGKILL)
    assert wait_until(lambda: dead_jobs(broker).get(job_id), 30) == "delivery_limit"
    stopped_at = db.value("SELECT checkpoint_line FROM import_jobs WHERE id = %s", (job_id,))
    assert stopped_at > 2

    assert dlq("replay", "--reason", "delivery_limit").returncode == 0
    job = wait_for_job(client, job_id)
    assert (job["status"], job["rows_loaded"]) == ("completed", 200_000)
    assert db.checksum(target) == db.checksum(reference)
    last_start = db.value(
        "SELECT start_line FROM import_segments WHERE job_id = %s ORDER BY id DESC LIMIT 1",
        (job_id,),
    )
    assert last_start >= stopped_at, "the replay resumed at the checkpoint"


@pytest.fixture
def short_ttl_vhost(prepared: None) -> Iterator[dict[str, str]]:
    """A broker virtual host whose work queue keeps messages for one second."""
    vhost = f"csv_import_ttl_{uuid.uuid4().hex[:6]}"
    env = dict(
        os.environ,
        BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        WORK_MESSAGE_TTL_SECONDS="1",
    )
    setup = subprocess.run(
        [sys.executable, "-m", "server.setup"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr
    yield env
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True)


def publish_raw(connection: Connection, job_id: str, routing_key: str = WORK_KEY) -> None:
    """A job message as the API would publish it, straight to the work queue's exchange."""
    producer = Producer(connection.channel(), Exchange(EXCHANGE, "direct", durable=True))
    producer.publish(
        json.dumps([[job_id], {}, {}]),
        routing_key=routing_key,
        content_type="application/json",
        delivery_mode=2,
        headers={"task": "imports.load", "id": job_id},
    )


def test_a_job_nobody_picks_up_within_its_ttl_dies_as_expired(
    short_ttl_vhost: dict[str, str],
) -> None:
    job_id = str(uuid.uuid4())
    with Connection(short_ttl_vhost["BROKER_URL"]) as connection:
        publish_raw(connection, job_id)
        assert wait_until(lambda: dead_jobs(connection).get(job_id), 60) == "expired"
    listing = dlq("list", env=short_ttl_vhost)
    assert "expired" in listing.stdout


def test_purge_asks_first_and_the_dry_run_keeps_everything(
    short_ttl_vhost: dict[str, str],
) -> None:
    job_id = str(uuid.uuid4())
    with Connection(short_ttl_vhost["BROKER_URL"]) as connection:
        publish_raw(connection, job_id)
        wait_until(lambda: job_id in dead_jobs(connection), 60)
        assert dlq("purge", env=short_ttl_vhost).returncode == 3
        assert dlq("purge", "--dry-run", env=short_ttl_vhost).returncode == 0
        assert job_id in dead_jobs(connection)
        assert dlq("purge", "--yes", "--reason", "expired", env=short_ttl_vhost).returncode == 0
        assert job_id not in dead_jobs(connection)


def test_a_job_rejected_after_waiting_out_a_retry_is_listed_as_rejected(
    broker: Connection,
) -> None:
    """Its first death was `expired`, in a wait queue; the one that put it in imports.dead
    was the rejection: that is the reason an operator selects it by."""
    job_id = str(uuid.uuid4())
    retry = Producer(broker.channel(), Exchange(RETRY_EXCHANGE, "direct", durable=True))
    retry.publish(
        json.dumps([[job_id], {}, {}]),
        routing_key=retry_queue_name(get_settings().retry_delays_seconds[0]),
        content_type="application/json",
        delivery_mode=2,
        expiration=0.1,
        headers={"task": "imports.load", "id": job_id},
    )
    work = build(get_settings()).work(broker.channel())
    message = wait_until(work.get, 30, "the message did not come back from its wait")
    message.reject(requeue=False)

    assert wait_until(lambda: dead_jobs(broker).get(job_id), 30) == "rejected"
    assert "rejected" in dlq("list").stdout
    chosen = dlq("purge", "--dry-run", "--reason", "rejected")
    assert "would have purged 1" in chosen.stdout, chosen.stdout
