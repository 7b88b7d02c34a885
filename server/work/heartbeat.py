"""Each worker process says, in Redis, that it is alive and which job it holds: the
operators' view of the workers (GET /workers) and the sweeper's test of whether a job still
has a holder, without Celery's remote control (which would create queues outside the
topology).

A thread beats every `WORKER_BEAT_SECONDS`. A process that is killed stops beating: after
`WORKER_GONE_SECONDS` it shows as gone, and its entry expires a while later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)
KEY_PREFIX = "csvimport:worker:"
# How long a gone worker stays listed, in heartbeats missed.
KEPT_FOR_BEATS = 120


@dataclass(frozen=True)
class Beat:
    """What a worker process last said of itself."""

    name: str
    host: str
    pid: int
    started: float
    beat: float
    job_id: str | None
    since: float | None

    def gone(self, now: float, gone_seconds: float) -> bool:
        return now - self.beat > gone_seconds

    @classmethod
    def of(cls, fields: Mapping[bytes | str, bytes | str]) -> Beat:
        text = {_text(key): _text(value) for key, value in fields.items()}
        return cls(
            text["name"],
            text["host"],
            int(text["pid"]),
            float(text["started"]),
            float(text["beat"]),
            text.get("job_id") or None,
            float(text["since"]) if text.get("since") else None,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Heartbeat:
    def __init__(self, redis_url: str, every: float) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.every = every
        host = socket.gethostname()
        self.name = f"{host}:{os.getpid()}"
        self.key = KEY_PREFIX + self.name
        self.fields: dict[str, str] = {
            "name": self.name,
            "host": host,
            "pid": str(os.getpid()),
            "started": str(time.time()),
            "job_id": "",
            "since": "",
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    @contextlib.contextmanager
    def holding(self, job_id: str) -> Iterator[None]:
        """While a task holds a job: said at once, and on every beat."""
        self.fields.update(job_id=job_id, since=str(time.time()))
        self.beat()
        try:
            yield
        finally:
            self.fields.update(job_id="", since="")
            self.beat()

    def beat(self) -> None:
        try:
            pipe = self.client.pipeline(transaction=True)
            beat: dict[Any, Any] = {**self.fields, "beat": str(time.time())}
            pipe.hset(self.key, mapping=beat)
            pipe.expire(self.key, max(1, round(self.every * KEPT_FOR_BEATS)))
            pipe.execute()
        except redis.RedisError as error:
            log.warning("heartbeat not written to Redis: %s", error)

    def stop(self) -> None:
        """A process that stops cleanly is no longer there: its entry goes with it."""
        self._stop.set()
        with contextlib.suppress(redis.RedisError):
            self.client.delete(self.key)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.beat()


def read_beats(client: redis.Redis) -> list[Beat]:
    """Every worker process that beat within its entry's lifetime, gone ones included."""
    beats = []
    for key in client.scan_iter(match=f"{KEY_PREFIX}*", count=500):
        fields = client.hgetall(key)
        if fields:
            beats.append(Beat.of(fields))
    return sorted(beats, key=lambda beat: beat.name)


def held_jobs(redis_url: str, gone_seconds: float) -> set[str] | None:
    """The jobs that a live worker holds; None when Redis does not answer."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        now = time.time()
        return {
            beat.job_id
            for beat in read_beats(client)
            if beat.job_id and not beat.gone(now, gone_seconds)
        }
    except redis.RedisError:
        return None
    finally:
        client.close()
