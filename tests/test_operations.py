"""Operations: metrics, health when a service is down, housekeeping, broker-side retries."""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from kombu import Connection
from sqlalchemy import Engine, create_engine

from server import dashboard
from server.housekeeping import clean
from server.messaging.topology import DEAD_QUEUE, WORK_QUEUE, build
from server.progress.events import snapshot_key, stream_key
from server.settings import Settings
from server.storage import LocalStorage
from tests.broker import message_count
from tests.conftest import ENV, MakeTable, StartWorker
from tests.harness import Database, Process, free_port, start_api, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job


def metric(body: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
    assert found, f"{name} is not in /metrics"
    return float(found.group(1))


COUNTED = (
    'csv_import_jobs{status="completed"}',
    'csv_import_jobs_ended_total{status="completed"}',
    "csv_import_rows_loaded_total",
    "csv_import_rows_refused_total",
    "csv_import_uploads_total",
    "csv_import_load_duration_seconds_count",
    "csv_import_queue_wait_seconds_count",
    "csv_import_rows_per_second_count",
    "csv_import_upload_size_bytes_count",
    'csv_import_segments_total{outcome="finished"}',
)


def scrape(client: httpx.Client) -> str:
    return client.get("/metrics").text


def test_metrics_count_jobs_rows_and_queue_depths(
    client: httpx.Client, worker: Process, table: MakeTable, broker: Connection
) -> None:
    job = wait_for_job(client, upload(client, b"id,email\n1,a@x\n", table()).json()["id"])
    assert job["status"] == "completed"
    before = scrape(client)
    job = wait_for_job(client, upload(client, b"id,email\n1,a@x\nx,b@x\n", table()).json()["id"])
    assert job["status"] == "completed"
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    body = after.text
    for name in COUNTED:
        assert metric(body, name) == metric(before, name) + 1, name
    assert metric(body, "csv_import_load_duration_seconds_sum") > metric(
        before, "csv_import_load_duration_seconds_sum"
    )
    assert 'csv_import_http_requests_total{method="POST",route="/imports",status="202"}' in body
    for queue in (WORK_QUEUE, DEAD_QUEUE):
        assert metric(body, f'csv_import_queue_messages{{queue="{queue}"}}') == message_count(
            broker, queue
        )
    every = {queue.name for queue in build(Settings()).queues}
    assert set(re.findall(r'^csv_import_queue_messages\{queue="(.+)"\}', body, re.M)) == every
    assert metric(body, "csv_import_broker_up") == 1


def test_counters_never_go_down_when_housekeeping_deletes_job_records(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    job_id = upload(client, b"id,email\n1,a@x\nx,b@x\n", table()).json()["id"]
    wait_for_job(client, job_id)
    before = scrape(client)
    settings = Settings(retention_seconds=0, record_retention_seconds=0)
    storage = LocalStorage(settings.upload_dir)

    def record_gone() -> bool:
        clean(_engine(), storage, settings)  # a batch at a time: the oldest jobs first
        return bool(db.value("SELECT count(*) FROM import_jobs WHERE id = %s", (job_id,)) == 0)

    wait_until(record_gone, 120, "housekeeping did not delete the job's record")
    after = scrape(client)
    gauge = 'csv_import_jobs{status="completed"}'
    assert metric(after, gauge) < metric(before, gauge)  # the records are gone
    for name in COUNTED[1:]:
        assert metric(after, name) == metric(before, name), name


def test_health_says_which_service_is_down(log_dir: Path, prepared: None) -> None:
    port = free_port()
    env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    api = start_api(env, log_dir, port)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
    finally:
        api.stop()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert (checks["postgresql"]["ok"], checks["rabbitmq"]["ok"], checks["redis"]["ok"]) == (
        True,
        True,
        False,
    )
    assert "Connection refused" in checks["redis"]["error"]


def test_housekeeping_removes_what_finished_jobs_left_behind(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    target = table()
    done = wait_for_job(
        client, upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(5)), target).json()["id"]
    )
    fresh = wait_for_job(
        client, upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(5)), target).json()["id"]
    )
    orphan = f"import_staging.job_{uuid.uuid4().hex}"
    db.execute(f"CREATE TABLE {orphan} (x int)")
    db.execute(
        "UPDATE import_jobs SET finished_at = now() - interval '8 days' WHERE id = %s",
        (done["id"],),
    )
    stale = Path(ENV["UPLOAD_DIR"], f"{uuid.uuid4()}.csv.part")
    stale.write_bytes(b"half an upload")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    keys = redis.Redis.from_url(ENV["REDIS_URL"])
    assert keys.exists(snapshot_key(done["id"]), stream_key(done["id"])) == 2

    settings = Settings()
    result = clean(_engine(), LocalStorage(settings.upload_dir), settings)

    assert result.jobs >= 1
    assert not Path(ENV["UPLOAD_DIR"], f"{done['id']}.csv").exists()
    assert Path(ENV["UPLOAD_DIR"], f"{fresh['id']}.csv").exists(), "recent jobs are kept"
    assert keys.exists(snapshot_key(done["id"]), stream_key(done["id"])) == 0
    assert db.value("SELECT to_regclass(%s)", (orphan,)) is None
    assert not stale.exists()
    assert db.value("SELECT cleaned_at IS NOT NULL FROM import_jobs WHERE id = %s", (done["id"],))

    db.execute(
        "UPDATE import_jobs SET finished_at = now() - interval '91 days' WHERE id = %s",
        (done["id"],),
    )
    clean(_engine(), LocalStorage(settings.upload_dir), settings)
    assert client.get(f"/imports/{done['id']}").status_code == 404


def _engine() -> Engine:
    return create_engine(ENV["DATABASE_URL"])


@pytest.fixture
def flaky_role(db: Database) -> Iterator[str]:
    """A database role the test can lock out, as a network fault or a restart would."""
    role = f"flaky_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
    yield role
    db.execute(f"ALTER ROLE {role} NOLOGIN")
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
    db.execute(f"DROP ROLE {role}")


def test_a_transient_database_fault_is_retried_with_growing_delays_in_the_broker(
    client: httpx.Client,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    flaky_role: str,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(200_000))
    target, reference = table(), db.reference(table(), content)
    job_id = upload(client, content, target).json()["id"]
    url = ENV["DATABASE_URL"].replace("postgres@", f"{flaky_role}@")
    worker = workers(batch_rows=500, database_url=url, one_transaction_max_bytes=0)
    wait_until(
        lambda: db.value("SELECT rows_loaded FROM import_jobs WHERE id = %s", (job_id,)),
        60,
        "no batch was committed",
    )

    db.execute(f"ALTER ROLE {flaky_role} NOLOGIN")
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (flaky_role,)
    )
    wait_until(lambda: len(retries(worker)) >= 2, 60, "the fault was not retried twice")
    db.execute(f"ALTER ROLE {flaky_role} LOGIN")

    job = wait_for_job(client, job_id, timeout=180)
    assert (job["status"], job["rows_loaded"]) == ("completed", 200_000)
    assert db.checksum(target) == db.checksum(reference)
    delays = retries(worker)
    assert delays == sorted(delays), f"delays grow: {delays}"
    assert delays[-1] > delays[0]


def retries(worker: Process) -> list[int]:
    return [int(d) for d in re.findall(r"retry \d+ in (\d+)s", worker.log())]


def test_a_worker_host_serves_its_own_metrics_without_an_api(
    client: httpx.Client, worker: Process, table: MakeTable, log_dir: Path
) -> None:
    wait_for_job(client, upload(client, b"id,email\n1,a@x\n", table()).json()["id"])
    port = free_port()
    exporter = Process(
        "exporter",
        [sys.executable, "-m", "server.run", "exporter"],
        dict(os.environ, METRICS_PORT=str(port)),
        log_dir,
    )
    try:
        body = wait_until(lambda: _get(f"http://127.0.0.1:{port}/"), 30, "no exporter")
    finally:
        exporter.stop()
    assert metric(body, 'csv_import_jobs_ended_total{status="completed"}') >= 1
    assert metric(body, "csv_import_rows_loaded_total") >= 1


def _get(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return None


def test_the_dashboard_asks_only_for_metrics_that_exist(client: httpx.Client) -> None:
    """Every series a panel of `python -m server.dashboard` queries is served by /metrics."""
    served = {line.split("{")[0].split(" ")[0] for line in scrape(client).splitlines()}
    asked = {name for expr in dashboard.queries() for name in re.findall(r"csv_import_\w+", expr)}
    assert asked
    assert asked - served == set()
    panels = dashboard.dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all(panel["gridPos"]["x"] + panel["gridPos"]["w"] <= dashboard.WIDTH for panel in panels)
