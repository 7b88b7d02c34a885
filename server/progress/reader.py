"""The API's side: the events of one job, for one subscriber, from the process's hub.

A new subscriber gets the current state first, then every stream entry after it, each with
its Redis Stream id as the SSE id; a subscriber that comes back with Last-Event-ID gets the
entries after that id, so nothing is missed and nothing repeats. The stream ends after a
terminal event. Without Redis, the job row is read instead, at a slower cadence.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from server.jobs.model import Job
from server.progress.events import Progress, event_fields
from server.progress.hub import Entry, Hub, HubUnavailable, Mailbox, stream_position

log = logging.getLogger(__name__)

FALLBACK_POLL_SECONDS = 1.0


async def follow(hub: Hub, job: Job, last_id: str | None) -> AsyncIterator[bytes]:
    """The job's events as encoded SSE messages; `job` is its row as the request found it."""
    try:
        async with hub.subscription(job.id) as (follower, mailbox):
            seen = stream_position(last_id or "")
            if last_id is None or seen is None:
                missed = [_first(job, follower.latest)]
            else:
                missed = await _missed(hub, job.id, follower.latest, last_id, seen)
            for entry in missed:
                yield entry.message
                if entry.final:
                    return
                seen = entry.position
            async for entry in _arriving(hub, job.id, mailbox, seen or (0, 0)):
                yield entry.message
    except HubUnavailable as error:
        log.warning("job %s: Redis unavailable (%s), following the job row", job.id, error)
        async for entry in _from_database(hub, job.id):
            yield entry.message


def _first(job: Job, latest: Entry | None) -> Entry:
    """The current state: the last entry, unless the job's row says it has ended."""
    if latest is not None and latest.final:
        return latest
    if job.status.at_rest:
        # Ended, and Redis not told yet: a worker writes the end only after committing it.
        return Entry.of(event_fields(Progress.of(job)), None)
    if latest is not None:
        return latest
    # No stream yet: every entry that comes will be new to this subscriber.
    return Entry.of(event_fields(Progress.of(job)), "0-0")


async def _missed(
    hub: Hub, job_id: uuid.UUID, latest: Entry | None, last_id: str, seen: tuple[int, int]
) -> list[Entry]:
    """What a subscriber coming back after `last_id` has missed."""
    if latest is not None and seen < latest.position:
        return await hub.since(job_id, last_id)
    if latest is not None and latest.final:
        return [Entry.of(latest.fields, None)]  # it had the end already: say it again, no more
    return []


async def _arriving(
    hub: Hub, job_id: uuid.UUID, mailbox: Mailbox, after: tuple[int, int]
) -> AsyncIterator[Entry]:
    while True:
        entries = await mailbox.take()
        for entry in entries:
            if entry.position <= after:
                continue
            yield entry
            after = entry.position
            if entry.final:
                return
        if not entries:
            job = await _job(hub, job_id)
            if job.status.at_rest:
                # The job ended and Redis has not heard of it (the worker writes the end only
                # after committing it, and may have died in between): its row has the last word.
                yield Entry.of(event_fields(Progress.of(job)), None)
                return


async def _from_database(hub: Hub, job_id: uuid.UUID) -> AsyncIterator[Entry]:
    previous = None
    while True:
        fields = event_fields(Progress.of(await _job(hub, job_id)))
        if fields != previous:
            entry = Entry.of(fields, None)
            yield entry
            previous = fields
            if entry.final:
                return
        await asyncio.sleep(FALLBACK_POLL_SECONDS)


async def _job(hub: Hub, job_id: uuid.UUID) -> Job:
    job = await hub.job(job_id)
    if job is None:  # deleted by housekeeping while followed
        raise LookupError(f"job {job_id} no longer exists")
    return job
