"""The API's side: the events of one job, for one subscriber.

A new subscriber gets the current state first, then every stream entry after it, each with
its Redis Stream id as the SSE id; a subscriber that comes back with Last-Event-ID gets the
entries after that id, so nothing is missed and nothing repeats. The stream ends after a
terminal event. Without Redis, the job row is read instead, at a slower cadence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sse_starlette import ServerSentEvent

from server.jobs.model import Job
from server.jobs.status import FINISHED
from server.progress.events import Progress, event_fields, is_final, snapshot_key, stream_key

log = logging.getLogger(__name__)

LoadJob = Callable[[], Awaitable[Job]]
BLOCK_MS = 5000
FALLBACK_POLL_SECONDS = 1.0


def sse(fields: dict[str, Any], event_id: str | None) -> ServerSentEvent:
    kind = fields["status"] if is_final(fields) else "progress"
    return ServerSentEvent(json.dumps(fields), event=kind, id=event_id)


async def follow(
    job_id: uuid.UUID, last_id: str | None, redis_url: str, load_job: LoadJob
) -> AsyncIterator[ServerSentEvent]:
    # A read waits up to BLOCK_MS for new entries: the socket must wait longer than that, or
    # every quiet stream would look like Redis gone (redis-py's own default is 5 seconds).
    client = aioredis.Redis.from_url(
        redis_url, socket_connect_timeout=2, socket_timeout=BLOCK_MS / 1000 + 5
    )
    try:
        async for event in _from_redis(client, job_id, last_id, load_job):
            yield event
    except (RedisError, OSError) as error:
        log.warning("job %s: Redis unavailable (%s), following the job row", job_id, error)
        async for event in _from_database(load_job):
            yield event
    finally:
        await client.aclose()


async def _from_redis(
    client: aioredis.Redis, job_id: uuid.UUID, last_id: str | None, load_job: LoadJob
) -> AsyncIterator[ServerSentEvent]:
    stream = stream_key(job_id)
    if last_id is None or not _is_stream_id(last_id):
        last_id, first = await _snapshot(client, job_id, load_job)
        yield first
        if _terminal(first):
            return
    while True:
        found: Any = await client.xread({stream: last_id}, block=BLOCK_MS, count=100)
        for _, entries in found:
            for entry_id, values in entries:
                last_id = entry_id.decode()
                fields = json.loads(values[b"data"])
                yield sse(fields, last_id)
                if is_final(fields):
                    return
        if not found:
            job = await load_job()
            if job.status.finished:
                # The job ended and Redis has not heard of it (the worker writes the end only
                # after committing it, and may have died in between): its row has the last word.
                yield sse(event_fields(Progress.of(job)), None)
                return


async def _snapshot(
    client: aioredis.Redis, job_id: uuid.UUID, load_job: LoadJob
) -> tuple[str, ServerSentEvent]:
    """The current state, and the stream id it stands at."""
    saved: Any = await client.hgetall(snapshot_key(job_id))
    latest = None
    if saved:
        entry_id = saved[b"stream_id"].decode()
        latest = entry_id, sse(json.loads(saved[b"data"]), entry_id)
        if _terminal(latest[1]):
            return latest
    job = await load_job()
    if job.status.finished:
        # Ended, and Redis not told yet: a worker writes the end only after committing it.
        return "0-0", sse(event_fields(Progress.of(job)), None)
    if latest is not None:
        return latest
    # No stream yet: every entry that comes will be new to this subscriber.
    return "0-0", sse(event_fields(Progress.of(job)), "0-0")


async def _from_database(load_job: LoadJob) -> AsyncIterator[ServerSentEvent]:
    previous = None
    while True:
        fields = event_fields(Progress.of(await load_job()))
        if fields != previous:
            yield sse(fields, None)
            previous = fields
        if is_final(fields):
            return
        await asyncio.sleep(FALLBACK_POLL_SECONDS)


def _terminal(event: ServerSentEvent) -> bool:
    return event.event in FINISHED


def _is_stream_id(value: str) -> bool:
    left, _, right = value.partition("-")
    return left.isdigit() and right.isdigit()
