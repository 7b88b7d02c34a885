"""Live progress over SSE, against a running API, a real worker and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from server.client import Event, read_events
from server.progress.events import is_final, stream_key
from server.progress.hub import Hub, stream_position
from tests.conftest import ENV, MakeTable, StartWorker
from tests.faults.services import PrivateRedis
from tests.harness import Process, bearer, free_port, start_api, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

TERMINAL = ("completed", "failed", "cancelled")


def subscribe(
    client: httpx.Client,
    url: str,
    last_id: str | None = None,
    stop_after: int | None = None,
    timeout: float = 120,
) -> list[Event]:
    """Read the event stream until its end, or until `stop_after` events (then hang up)."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events: list[Event] = []
    with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        for event in read_events(response.iter_lines()):
            events.append(event)
            if len(events) == stop_after:
                break
    return events


def stream_ids(job_id: str) -> list[str]:
    client = redis.Redis.from_url(ENV["REDIS_URL"])
    entries: list[tuple[bytes, Any]] = client.xrange(stream_key(job_id))  # type: ignore[assignment]
    return [entry_id.decode() for entry_id, _ in entries]


def final_written(job_id: str) -> bool:
    client = redis.Redis.from_url(ENV["REDIS_URL"])
    entries: list[tuple[bytes, Any]] = client.xrevrange(stream_key(job_id), count=1)  # type: ignore[assignment]
    return bool(entries) and is_final(json.loads(entries[0][1][b"data"]))


def test_events_arrive_in_order_and_a_reconnect_misses_nothing(
    client: httpx.Client, workers: StartWorker, table: MakeTable
) -> None:
    job = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(200_000)), table()).json()
    workers(batch_rows=500)

    first = subscribe(client, job["events_url"], stop_after=3)
    assert first[-1].kind == "progress", "the first subscriber hung up before the end"
    second = subscribe(client, job["events_url"], last_id=first[-1].id)

    snapshot, streamed = first[0], first[1:] + second
    assert snapshot.data["status"] in ("queued", "running")
    assert [e.id for e in streamed] == stream_ids(job["id"]), "no gap, no repeat"
    loaded = [e.data["rows_loaded"] for e in streamed]
    assert loaded == sorted(loaded), "rows_loaded never goes back"
    last = streamed[-1]
    assert last.kind == "completed"
    final = client.get(job["url"]).json()
    assert (
        (last.data["rows_loaded"], last.data["rows_refused"])
        == (final["rows_loaded"], final["rows_refused"])
        == (200_000, 0)
    )
    assert last.data["percent"] == 100.0
    running = [e for e in streamed if e.kind == "progress"]
    assert running, "progress events came before the end"
    assert all(e.data["bytes_total"] == final["bytes_total"] for e in streamed)
    assert all(e.data["rows_per_second"] is not None for e in running)


def test_a_finished_job_replays_its_final_state_and_closes(
    client: httpx.Client, worker: Process, table: MakeTable
) -> None:
    job = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(10)), table()).json()
    wait_for_job(client, job["id"])
    events = subscribe(client, job["events_url"])
    assert [(e.kind, e.data["rows_loaded"]) for e in events] == [("completed", 10)]


def test_a_reconnect_after_an_end_that_never_reached_redis_gets_the_end_from_the_job(
    client: httpx.Client, worker: Process, table: MakeTable
) -> None:
    """The worker commits a job's end, then writes it to Redis, and may die in between: a
    subscriber coming back with its Last-Event-ID still gets the end, and the stream closes."""
    job = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(10)), table()).json()
    wait_for_job(client, job["id"])
    redis_client = redis.Redis.from_url(ENV["REDIS_URL"])

    def ended() -> list[tuple[bytes, Any]] | None:
        """The worker writes the end to Redis just after the job row says so."""
        entries: list[tuple[bytes, Any]] = redis_client.xrange(stream_key(job["id"]))  # type: ignore[assignment]
        last = json.loads(entries[-1][1][b"data"]) if entries else {}
        return entries if last.get("status") == "completed" else None

    *progress, (end_id, _) = wait_until(ended, 10, "the end never reached Redis")
    assert progress, "the job wrote progress before its end"
    redis_client.xdel(stream_key(job["id"]), end_id)
    last_seen = progress[-1][0].decode()

    # Within a ping (15 s): a stream that waits for an end that never comes times out.
    events = subscribe(client, job["events_url"], last_id=last_seen, timeout=10)

    assert [(e.kind, e.data["rows_loaded"]) for e in events] == [("completed", 10)]


def test_a_stream_that_stays_quiet_for_a_while_still_follows_redis(
    client: httpx.Client, workers: StartWorker, table: MakeTable
) -> None:
    """A job that waits for a worker longer than one blocking read of the stream: its
    events still come from Redis (each with its stream id), not from polling the job row."""
    job = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(20_000)), table()).json()
    seen: list[Event] = []
    with client.stream("GET", job["events_url"], timeout=60) as response:
        for event in read_events(response.iter_lines()):
            seen.append(event)
            if len(seen) == 1:
                time.sleep(7)  # longer than a read's block (5 s), nothing happening
                workers(batch_rows=2000)
            if event.kind == "completed":
                break
    streamed = seen[1:]
    assert streamed, "events after the quiet spell"
    assert all(event.id for event in streamed), "every later event came from the stream"
    assert streamed[-1].kind == "completed"


def test_an_unknown_job_has_no_events(client: httpx.Client) -> None:
    response = client.get("/imports/00000000-0000-0000-0000-000000000000/events")
    assert response.status_code == 404


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def many_subscribers(url: str, count: int) -> list[list[Event]]:
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:

        async def one() -> list[Event]:
            async with http.stream("GET", url) as response:
                lines = [line async for line in response.aiter_lines()]
            return list(read_events(iter(lines)))

        return await asyncio.gather(*(one() for _ in range(count)))


def test_two_hundred_subscribers_all_see_the_end_and_memory_comes_back(
    api_process: Process, client: httpx.Client, workers: StartWorker, table: MakeTable
) -> None:
    target = table()
    warm = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(5)), target).json()
    workers()
    wait_for_job(client, warm["id"])
    # A first round of as many subscribers sets the allocator's high-water mark; what a
    # second round leaves on top of it is what subscribers leak.
    asyncio.run(many_subscribers(warm["events_url"], 200))
    time.sleep(1)
    before = rss_kib(api_process.popen.pid)

    job = upload(
        client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(20_000, start=100)), target
    ).json()
    results = asyncio.run(many_subscribers(job["events_url"], 200))

    assert len(results) == 200
    assert all(events and events[-1].kind == "completed" for events in results)
    assert {events[-1].data["rows_loaded"] for events in results} == {20_000}
    time.sleep(1)
    after = rss_kib(api_process.popen.pid)
    assert after - before < 8 * 1024, f"API grew by {(after - before) // 1024} MB"


def redis_readers() -> int:
    """Connections of the test database's Redis that are blocked in XREAD right now."""
    client = redis.Redis.from_url(ENV["REDIS_URL"])
    db = client.connection_pool.connection_kwargs.get("db", 0)
    listed: list[dict[str, Any]] = client.client_list()
    return sum(
        1
        for c in listed
        if c.get("cmd") == "xread" and "b" in c.get("flags", "") and str(c.get("db")) == str(db)
    )


async def watch_then_run(url: str, count: int, run: Any) -> tuple[int, list[list[Event]]]:
    """`count` subscribers; once each has its first event, count the Redis readers, then
    `run()` the job and read every stream to its end."""
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        started = [asyncio.Event() for _ in range(count)]

        async def one(index: int) -> list[Event]:
            events: list[Event] = []
            async with http.stream("GET", url) as response:
                async for event in _events(response):
                    events.append(event)
                    started[index].set()
            return events

        streams = [asyncio.create_task(one(index)) for index in range(count)]
        await asyncio.gather(*(event.wait() for event in started))
        await asyncio.sleep(0.5)
        readers = await asyncio.to_thread(redis_readers)
        await asyncio.to_thread(run)
        return readers, await asyncio.gather(*streams)


async def _events(response: httpx.Response) -> Any:
    lines: list[str] = []
    async for line in response.aiter_lines():
        lines.append(line)
        if line == "":
            for event in read_events(iter(lines)):
                yield event
            lines = []


def test_the_subscribers_of_a_job_share_one_redis_reader(
    client: httpx.Client, workers: StartWorker, table: MakeTable
) -> None:
    job = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(100_000)), table()).json()

    readers, results = asyncio.run(
        watch_then_run(job["events_url"], 300, lambda: workers(batch_rows=2000))
    )

    assert readers == 1, "one XREAD for every subscriber of the process"
    assert all(events[-1].kind == "completed" for events in results)
    assert {events[-1].data["rows_loaded"] for events in results} == {100_000}
    for events in results:
        ids = [stream_position(event.id) or (0, 0) for event in events[1:] if event.id]
        assert ids == sorted(set(ids)), "stream entries in order, none twice"


def test_a_reconnect_after_the_final_event_gets_204(
    client: httpx.Client, worker: Process, table: MakeTable
) -> None:
    """An EventSource reconnects on its own after any stream ends; 204 stops it."""
    job = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(10)), table()).json()
    wait_for_job(client, job["id"])
    # The job row says completed a moment before its final event reaches the stream.
    wait_until(lambda: final_written(job["id"]), 10, "no final event in the stream")
    final = stream_ids(job["id"])[-1]

    response = client.get(job["events_url"], headers={"Last-Event-ID": final})

    assert response.status_code == 204


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()


def test_with_redis_gone_the_import_finishes_and_subscribers_see_the_end(
    private_redis: PrivateRedis,
    workers: StartWorker,
    table: MakeTable,
    log_dir: Path,
    api_key: str,
) -> None:
    url, server = private_redis.url, private_redis.process
    assert server is not None
    port = free_port()
    env = dict(os.environ, REDIS_URL=url)
    api = start_api(env, log_dir, port)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=bearer(api_key), timeout=60
        ) as http:
            job = upload(http, csv_bytes(CUSTOMER_COLUMNS, customer_rows(60_000)), table()).json()
            workers(batch_rows=500, redis_url=url)
            events = []
            with http.stream("GET", job["events_url"], timeout=120) as response:
                for event in read_events(response.iter_lines()):
                    events.append(event)
                    if event.kind == "progress" and server.poll() is None:
                        server.send_signal(signal.SIGKILL)
            final = wait_for_job(http, job["id"])
    finally:
        api.stop()
    assert server.poll() is not None, "Redis was stopped during the import"
    assert (final["status"], final["rows_loaded"]) == ("completed", 60_000)
    assert events[-1].kind == "completed"
    assert events[-1].data["rows_loaded"] == 60_000


def test_a_subscriber_never_waits_on_a_job_the_hub_stopped_following() -> None:
    """Two subscribers wait for the hub to start following a job; the first leaves at once
    (its job had ended), which ends the following: the second must get a followed job, not
    the one just dropped, or it would wait for entries that nobody reads."""

    async def scenario() -> bool:
        hub = Hub(ENV["REDIS_URL"], lambda _: None)
        job_id = uuid.uuid4()

        async def leaves_at_once() -> None:
            async with hub.subscription(job_id):
                pass

        async def stays() -> bool:
            async with hub.subscription(job_id) as (follower, _):
                return hub.followers.get(job_id) is follower

        try:
            _, followed = await asyncio.gather(leaves_at_once(), stays())
        finally:
            await hub.close()
        return followed

    assert asyncio.run(scenario())
