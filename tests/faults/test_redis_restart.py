"""Redis stopped and started during an import: the import goes on without it, and its
progress comes back to Redis once Redis is back."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from server.client import read_events
from server.progress.events import snapshot_key, stream_key
from tests.conftest import ENV, MakeTable, StartWorker
from tests.faults import stack
from tests.faults.figures import NO_KEY_DDL, Figures
from tests.faults.services import PrivateRedis
from tests.faults.watch import rows_loaded
from tests.harness import Database, Process, bearer, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

pytestmark = pytest.mark.faults

ROWS = 150_000
RESTARTS = 2


def latest_event(server: PrivateRedis, job_id: str) -> dict[str, object] | None:
    client = redis.Redis.from_url(server.url, socket_timeout=1)
    try:
        entries: Any = client.xrevrange(stream_key(uuid.UUID(job_id)), count=1)
    except redis.RedisError:
        return None
    finally:
        client.close()
    found: dict[str, object] | None = json.loads(entries[0][1][b"data"]) if entries else None
    return found


def newer_event(server: PrivateRedis, job_id: str, rows: int) -> dict[str, object] | None:
    """The job's latest event in Redis, once it counts more rows than `rows`."""
    event = latest_event(server, job_id)
    return event if event and int(str(event["rows_loaded"])) > rows else None


def test_redis_stopped_and_started_mid_import_the_import_lands_and_progress_resumes(
    private_redis: PrivateRedis,
    workers: StartWorker,
    table: MakeTable,
    db: Database,
    log_dir: Path,
    figures: Figures,
    api_key: str,
) -> None:
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(ROWS))
    target, reference = table(NO_KEY_DDL), db.reference(table(NO_KEY_DDL), content)
    env = dict(os.environ, REDIS_URL=private_redis.url)
    with (
        stack.api(env, log_dir) as base,
        httpx.Client(base_url=base, headers=bearer(api_key), timeout=60) as http,
    ):
        job_id = upload(http, content, target).json()["id"]
        workers(batch_rows=200, redis_url=private_redis.url, one_transaction_max_bytes=0)
        for _ in range(RESTARTS):
            wait_until(lambda: latest_event(private_redis, job_id), 60, "no progress in Redis")
            private_redis.stop()
            at_stop = rows_loaded(db, job_id)
            wait_until(
                lambda: rows_loaded(db, job_id) > at_stop + 5000,  # noqa: B023
                60,
                "the import stopped with Redis",
            )
            assert rows_loaded(db, job_id) < ROWS, "the import ended too soon: a larger file"
            # Without Redis, a subscriber follows the job row.
            with http.stream("GET", f"/imports/{job_id}/events") as response:
                first = next(read_events(response.iter_lines()))
            assert first.data["rows_loaded"] >= at_stop
            private_redis.start()
            at_start = rows_loaded(db, job_id)
            resumed = wait_until(
                lambda: newer_event(private_redis, job_id, at_start),  # noqa: B023
                60,
                "progress did not come back to Redis",
            )
            assert resumed["status"] in ("running", "completed")
        final = wait_for_job(http, job_id, timeout=180)
        events = list(read_events(http.get(f"/imports/{job_id}/events").iter_lines()))
    assert final["status"] == "completed", final
    assert (final["rows_loaded"], final["rows_refused"]) == (ROWS, 0)
    figures.check_exact(db, target, reference)
    assert [(e.kind, e.data["rows_loaded"]) for e in events][-1] == ("completed", ROWS)
    assert redis.Redis.from_url(private_redis.url).exists(snapshot_key(uuid.UUID(job_id)))
    figures.add(redis_restarts=RESTARTS)


def test_a_job_that_ended_without_redis_hearing_of_it_replays_its_end_from_the_row(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
) -> None:
    """A worker writes a job's last event after it commits the job's end; if it dies in
    between (or Redis is away), Redis still says `running`. The row has the last word."""
    job = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(10)), table()).json()
    wait_for_job(client, job["id"])
    keys = redis.Redis.from_url(ENV["REDIS_URL"])
    job_id = uuid.UUID(job["id"])
    wait_until(lambda: keys.exists(snapshot_key(job_id)), 10)
    running = {"status": "running", "rows_loaded": 5, "rows_refused": 0}
    keys.delete(stream_key(job_id))
    entry = keys.xadd(stream_key(job_id), {"data": json.dumps(running)})
    keys.hset(snapshot_key(job_id), mapping={"data": json.dumps(running), "stream_id": entry})

    events = list(read_events(client.get(job["events_url"]).iter_lines()))

    assert [(e.kind, e.data["rows_loaded"]) for e in events] == [("completed", 10)]
