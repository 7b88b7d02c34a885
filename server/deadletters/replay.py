"""List, replay and purge dead letters.

Messages are taken from `imports.dead` unacknowledged and held while they are looked at;
those not chosen go back to the queue. A replayed message is acknowledged only after a new
message for its job has been confirmed by the broker. Replaying is safe: the job resumes at
its checkpoint and never loads a row twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu import Connection
from sqlalchemy import Engine

from server.db import raw_cursor
from server.deadletters.letters import DeadLetter, Selection, read_letter
from server.housekeeping import forget_progress
from server.jobs import repository
from server.jobs.status import JobStatus
from server.loading import staging
from server.messaging import topology
from server.messaging.publish import publish_job
from server.settings import Settings, get_settings

# How many dead messages one run holds at most; run again for more.
MAX_HELD = 10_000


@dataclass
class Held:
    message: Any
    letter: DeadLetter


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def held_letters(connection: Connection, settings: Settings) -> Iterator[list[Held]]:
    """Every dead message, unacknowledged; whatever is not acked is put back at the end."""
    dead = next(q for q in topology.build(settings).queues if q.name == topology.DEAD_QUEUE)
    channel: Any = connection.channel()
    queue = dead(channel)
    held: list[Held] = []
    try:
        while len(held) < MAX_HELD and (message := queue.get(no_ack=False)) is not None:
            held.append(
                Held(message, read_letter(message.body or b"[[]]", dict(message.headers or {})))
            )
        yield held
    finally:
        for item in held:
            if not item.message.acknowledged:
                item.message.requeue()
        channel.close()


def chosen(held: list[Held], selection: Selection) -> list[Held]:
    now = datetime.now(UTC)
    matching = [item for item in held if selection.matches(item.letter, now)]
    return matching[: selection.limit] if selection.limit else matching


def why_not(engine: Engine, job_id: str) -> str | None:
    """Why a job must not be replayed, or None if it may."""
    with engine.connect() as connection:
        job = repository.get_job(connection, uuid.UUID(job_id))
        if job is None:
            return "no such job"
        if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            return f"the job is already {job.status}"
        if job.rows_loaded and not staging.exists(raw_cursor(connection), job.id):
            return "its staged rows were removed after the retention period; upload it again"
    return None


def replay(
    held: list[Held],
    engine: Engine,
    app: Celery,
    dry_run: bool,
    step: Callable[[], None] = lambda: None,
) -> Summary:
    summary = Summary()
    for item in held:
        job_id = item.letter.job_id
        reason = why_not(engine, job_id)
        if reason:
            summary.refused.append((job_id, reason))
        elif not dry_run:
            with engine.begin() as connection:
                repository.reset_for_replay(connection, uuid.UUID(job_id))
            # Its old events end with `failed`: a new subscriber must not stop there.
            forget_progress(get_settings().redis_url, [uuid.UUID(job_id)])
            publish_job(app, uuid.UUID(job_id))
            item.message.ack()
            with engine.begin() as connection:
                repository.mark_published(connection, uuid.UUID(job_id))
            summary.done.append(job_id)
        else:
            summary.done.append(job_id)
        step()
    return summary


def purge(held: list[Held], dry_run: bool) -> Summary:
    summary = Summary()
    for item in held:
        if not dry_run:
            item.message.ack()
        summary.done.append(item.letter.job_id)
    return summary
