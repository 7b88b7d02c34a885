"""One reader of Redis per API process, for every subscriber of every job it serves.

Each followed job has a `Follower`: where the hub's read stands in the job's stream, the last
entry seen, and the mailboxes of its subscribers. One connection blocks in `XREAD` over the
streams of every followed job, and over a wake stream of the hub's own, written when a job is
first followed so that the read starts over with the new stream. Each entry is encoded as an
SSE message once and put in every mailbox.

A job with many subscribers gets its progress fanned out at most every `BUSY_INTERVAL`
seconds (the newest entry wins; a final entry goes out at once), so ten thousand browsers
watching one import cost the process little. The job rows that subscribers need (to check
access, and to see a job that ended without telling Redis) are read once for all the
subscribers of a job that ask at the same time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from server.jobs.model import Job
from server.progress.events import is_final, snapshot_key, stream_key

log = logging.getLogger(__name__)

BLOCK_MS = 5000
# From this many subscribers on, a job's progress goes out at most this often.
BUSY_SUBSCRIBERS = 100
BUSY_INTERVAL = 0.6
# A subscriber that falls this far behind keeps only the newest entries.
MAILBOX_ENTRIES = 64
# Redis connections for snapshots and catch-up reads, whatever the number of subscribers.
COMMAND_CONNECTIONS = 20
WAKE_TTL_SECONDS = 3600

LoadJob = Callable[[uuid.UUID], Job | None]
StreamKey = tuple[int, int]


def stream_position(entry_id: str) -> StreamKey | None:
    """A Redis Stream id as a pair of numbers, or None when the text is not one."""
    left, _, right = entry_id.partition("-")
    if not (left.isdigit() and right.isdigit()):
        return None
    return int(left), int(right)


@dataclass(frozen=True, slots=True)
class Entry:
    """One event, encoded once for every subscriber."""

    id: str | None
    fields: dict[str, Any]
    message: bytes
    final: bool
    position: StreamKey  # where `id` stands in the stream; (0, 0) for an event without one

    @classmethod
    def of(cls, fields: dict[str, Any], entry_id: str | None) -> Entry:
        final = is_final(fields)
        kind = fields["status"] if final else "progress"
        event = ServerSentEvent(json.dumps(fields), event=kind, id=entry_id)
        position = stream_position(entry_id or "") or (0, 0)
        return cls(entry_id, fields, event.encode(), final, position)


class HubUnavailable(RuntimeError):
    """Redis cannot be read: subscribers follow the job row instead."""


class Mailbox:
    """What the hub has for one subscriber and the subscriber has not sent yet."""

    def __init__(self) -> None:
        self.entries: deque[Entry] = deque(maxlen=MAILBOX_ENTRIES)
        self.ready = asyncio.Event()
        self.failed = False

    def put(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.ready.set()

    def fail(self) -> None:
        self.failed = True
        self.ready.set()

    def tick(self) -> None:
        self.ready.set()

    async def take(self) -> list[Entry]:
        """What came since the last take; empty after a quiet spell (see `Hub._read`)."""
        await self.ready.wait()
        self.ready.clear()
        if self.failed:
            raise HubUnavailable("the hub lost Redis")
        taken = list(self.entries)
        self.entries.clear()
        return taken


@dataclass
class Follower:
    """One job's stream as the hub follows it."""

    job_id: uuid.UUID
    position: str = "0-0"
    latest: Entry | None = None
    mailboxes: set[Mailbox] = field(default_factory=set)
    sent_at: float = 0.0
    heard_at: float = field(default_factory=time.monotonic)
    pending: Entry | None = None
    flush: asyncio.TimerHandle | None = None

    def receive(self, entry: Entry) -> None:
        self.latest = entry
        self.heard_at = time.monotonic()
        busy = len(self.mailboxes) >= BUSY_SUBSCRIBERS
        wait = self.sent_at + BUSY_INTERVAL - time.monotonic()
        if busy and not entry.final and wait > 0:
            self.pending = entry
            if self.flush is None:
                self.flush = asyncio.get_running_loop().call_later(wait, self._flush)
            return
        self._send(entry)

    def _flush(self) -> None:
        self.flush = None
        if self.pending is not None:
            self._send(self.pending)

    def _send(self, entry: Entry) -> None:
        self.pending = None
        if self.flush is not None:
            self.flush.cancel()
            self.flush = None
        self.sent_at = time.monotonic()
        for mailbox in self.mailboxes:
            mailbox.put(entry)

    def fail(self) -> None:
        for mailbox in self.mailboxes:
            mailbox.fail()

    def quiet(self, now: float) -> bool:
        return now - self.heard_at >= BLOCK_MS / 1000

    def tick(self, now: float) -> None:
        """Tell the subscribers of a job that has been quiet for a read's block: they look at
        the job's row, which may say it ended without telling Redis."""
        self.heard_at = now
        for mailbox in self.mailboxes:
            mailbox.tick()


class SharedReads:
    """Reads of one job's row for many callers: each caller gets a read that began after it
    asked, and the callers who ask while a read is under way share the next one."""

    def __init__(self, load: Callable[[], Job | None]) -> None:
        self.load = load
        self.current: asyncio.Task[Job | None] | None = None
        self.next: asyncio.Task[Job | None] | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None

    async def get(self) -> Job | None:
        if self.current is None:
            task = self.current = asyncio.ensure_future(self._read(None))
        else:
            if self.next is None:
                self.next = asyncio.ensure_future(self._read(self.current))
            task = self.next
        return await asyncio.shield(task)

    async def _read(self, after: asyncio.Task[Job | None] | None) -> Job | None:
        this = asyncio.current_task()
        if after is not None:
            await asyncio.wait([after])
            self.current, self.next = self.next, None
        try:
            return await run_in_threadpool(self.load)
        finally:
            if self.current is this:
                self.current = None


class Hub:
    def __init__(self, redis_url: str, load_job: LoadJob) -> None:
        self.reader = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=BLOCK_MS / 1000 + 5
        )
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url, max_connections=COMMAND_CONNECTIONS, timeout=10, socket_connect_timeout=2
        )
        self.commands = aioredis.Redis(connection_pool=pool)
        self.load_job = load_job
        self.followers: dict[uuid.UUID, Follower] = {}
        self.starting: dict[uuid.UUID, asyncio.Task[Follower]] = {}
        self.jobs: dict[uuid.UUID, SharedReads] = {}
        self.wake_key = f"csvimport:hub:{uuid.uuid4()}:wake"
        self.wake_position = "0-0"
        self.reading: asyncio.Task[None] | None = None

    async def job(self, job_id: uuid.UUID) -> Job | None:
        """The job's row as it was read after this call began, one read for every caller
        waiting at the time, however many."""
        reads = self.jobs.get(job_id)
        if reads is None:
            if len(self.jobs) > 1000:
                self.jobs = {key: found for key, found in self.jobs.items() if found.busy}
            reads = self.jobs[job_id] = SharedReads(partial(self.load_job, job_id))
        return await reads.get()

    @asynccontextmanager
    async def subscription(self, job_id: uuid.UUID) -> AsyncIterator[tuple[Follower, Mailbox]]:
        """A mailbox for the job's entries, from its snapshot on."""
        follower = await self._follower(job_id)
        # Another subscriber may have left, and the job been dropped, while this one waited
        # for the following to start: a dropped follower is read by nobody.
        while self.followers.get(job_id) is not follower:
            follower = await self._follower(job_id)
        mailbox = Mailbox()
        follower.mailboxes.add(mailbox)
        try:
            yield follower, mailbox
        finally:
            follower.mailboxes.discard(mailbox)
            if not follower.mailboxes and self.followers.get(job_id) is follower:
                del self.followers[job_id]

    async def since(self, job_id: uuid.UUID, entry_id: str) -> list[Entry]:
        """The job's entries after `entry_id`, for a subscriber that comes back."""
        try:
            found: Any = await self.commands.xrange(stream_key(job_id), f"({entry_id}", "+")
        except (RedisError, OSError) as error:
            raise HubUnavailable(str(error)) from error
        return [Entry.of(json.loads(values[b"data"]), key.decode()) for key, values in found]

    async def ended_for(self, job_id: uuid.UUID, last_id: str) -> bool:
        """Whether a subscriber that has seen `last_id` has seen the job's final event."""
        seen = stream_position(last_id)
        if seen is None:
            return False
        try:
            saved: Any = await self.commands.hgetall(snapshot_key(job_id))
        except (RedisError, OSError):
            return False
        if not saved or not is_final(json.loads(saved[b"data"])):
            return False
        final_at = stream_position(saved[b"stream_id"].decode())
        return final_at is not None and final_at <= seen

    async def _follower(self, job_id: uuid.UUID) -> Follower:
        found = self.followers.get(job_id)
        if found is not None:
            return found
        starting = self.starting.get(job_id)
        if starting is None or starting.done():
            starting = asyncio.ensure_future(self._start(job_id))
            self.starting[job_id] = starting
        return await asyncio.shield(starting)

    async def _start(self, job_id: uuid.UUID) -> Follower:
        """Follow a job from its snapshot: the last entry, and where the stream stands."""
        try:
            saved: Any = await self.commands.hgetall(snapshot_key(job_id))
        except (RedisError, OSError) as error:
            raise HubUnavailable(str(error)) from error
        finally:
            # Whoever asks after this point starts afresh (a start whose follower was
            # dropped must not be handed out again).
            self.starting.pop(job_id, None)
        follower = Follower(job_id)
        if saved:
            follower.position = saved[b"stream_id"].decode()
            follower.latest = Entry.of(json.loads(saved[b"data"]), follower.position)
        self.followers[job_id] = follower
        await self._wake()
        return follower

    async def _wake(self) -> None:
        if self.reading is None or self.reading.done():
            self.reading = asyncio.create_task(self._read())
            return
        try:
            await self.commands.xadd(self.wake_key, {"job": "new"}, maxlen=10, approximate=False)
            await self.commands.expire(self.wake_key, WAKE_TTL_SECONDS)
        except (RedisError, OSError) as error:
            raise HubUnavailable(str(error)) from error

    async def _read(self) -> None:
        """Read every followed stream until no job is followed any more."""
        try:
            while self.followers:
                streams: Any = {stream_key(f.job_id): f.position for f in self.followers.values()}
                streams[self.wake_key] = self.wake_position
                found: Any = await self.reader.xread(streams, block=BLOCK_MS, count=100)
                for key, entries in found:
                    self._deliver(key.decode(), entries)
                self._sweep(time.monotonic())
        except (RedisError, OSError) as error:
            log.warning("progress hub: Redis unavailable (%s), subscribers follow job rows", error)
            self._fail_all()
        except Exception:
            log.exception("progress hub: reading failed, subscribers follow job rows")
            self._fail_all()
            raise

    def _sweep(self, now: float) -> None:
        """Tick the quiet jobs; forget those nobody waits for (their subscribers went away
        while the job was being looked up)."""
        for job_id, follower in list(self.followers.items()):
            if not follower.quiet(now):
                continue
            if follower.mailboxes:
                follower.tick(now)
            else:
                del self.followers[job_id]

    def _fail_all(self) -> None:
        for follower in self.followers.values():
            follower.fail()
        self.followers.clear()

    def _deliver(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        if key == self.wake_key:
            self.wake_position = entries[-1][0].decode()
            return
        job_id = uuid.UUID(key.split(":")[2])
        follower = self.followers.get(job_id)
        if follower is None:
            return
        for entry_id, values in entries:
            follower.position = entry_id.decode()
            follower.receive(Entry.of(json.loads(values[b"data"]), follower.position))

    async def close(self) -> None:
        if self.reading is not None:
            self.reading.cancel()
        for follower in self.followers.values():
            follower.fail()
        await self.reader.aclose()
        await self.commands.aclose()
