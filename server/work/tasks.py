"""The one task: load a segment of a job, then hand the job on, retry it, or let it die.

The task deals with messages, retries and acks; the work itself is `load_segment`.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import kombu.exceptions
import psycopg2
import redis.exceptions
import sqlalchemy.exc
from celery import Celery, Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from kombu import Connection
from sqlalchemy import Engine

from server import logs, measures
from server.db import worker_engine
from server.loading.segment import Outcome, Segment, describe, fail_job, load_segment
from server.messaging import topology
from server.messaging.publish import TASK_NAME, publish_job
from server.progress.writer import ProgressWriter
from server.settings import Settings, get_settings
from server.storage import Storage, open_storage
from server.work.celery_app import app
from server.work.heartbeat import Heartbeat
from server.work.reporting import SegmentReporter, report_final

log = logging.getLogger(__name__)
JITTER = 0.8
GIL_SWITCH_SECONDS = 0.0001
GC_THRESHOLDS = (50_000, 20, 100)

# Faults that pass: the job is retried later through a broker wait queue.
TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    ConnectionError,
    TimeoutError,
)


BROKER_FAULTS = (kombu.exceptions.OperationalError, ConnectionError, TimeoutError)


@dataclass
class _Process:
    settings: Settings
    engine: Engine
    storage: Storage
    progress: ProgressWriter
    heartbeat: Heartbeat


_process: _Process | None = None


@worker_init.connect
def _declare_topology(**_: object) -> None:
    settings = get_settings()
    with Connection(settings.broker_url) as connection:
        topology.declare(connection, topology.build(settings))


@worker_process_init.connect
def _open_process(**_: object) -> None:
    """Engines are made after the fork: a connection must never be shared by processes."""
    global _process
    # A segment's reading thread parses while its copier thread waits on PostgreSQL; each
    # time PostgreSQL answers, the copier needs the GIL back. Python hands it over only
    # every switch interval (5 ms by default), several times per batch: at 0.1 ms the
    # copier is not kept waiting (a 1,000,000-row load measured 20-30% faster).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # A batch holds ten thousand records of small objects, none of them in a cycle: with
    # Python's default thresholds, collecting them over and over took a third of the
    # careful path's time. What the process loaded at start is never collected again.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    settings = get_settings()
    _process = _Process(
        settings,
        worker_engine(settings),
        open_storage(settings),
        ProgressWriter(settings.redis_url),
        Heartbeat(settings.redis_url, settings.worker_beat_seconds),
    )
    _process.heartbeat.start()


@worker_process_shutdown.connect
def _close_process(**_: object) -> None:
    if _process is not None:
        _process.heartbeat.stop()
        _process.engine.dispose()
        _process.progress.close()


def process() -> _Process:
    if _process is None:  # outside a prefork child (tests calling the task body directly)
        _open_process()
    assert _process is not None
    return _process


@app.task(name=TASK_NAME, bind=True)
def load_import(self: Task[..., str], job_id: str, retries: int = 0) -> str:
    """One segment of a job; every log line of it names the job (and its tenant)."""
    with logs.scope(job_id=job_id), process().heartbeat.holding(job_id):
        return run_segment(self, job_id, retries)


def run_segment(task: Task[..., str], job_id: str, retries: int) -> str:
    state = process()
    job = uuid.UUID(job_id)
    reporter = SegmentReporter(state.progress)
    segment = Segment(
        job,
        time.monotonic() + state.settings.segment_seconds,
        f"{socket.gethostname()}:{os.getpid()}",
        reporter.batch,
    )
    try:
        outcome = load_segment(state.engine, state.storage, state.settings, segment)
    except SoftTimeLimitExceeded:
        log.warning("job %s: soft time limit, continuing from the last checkpoint", job)
        outcome = Outcome.PAUSED
    except TRANSIENT as error:
        return retry_later(state, job, retries, error)
    except Exception as error:
        log.exception("job %s: permanent failure", job)
        fail_job(state.engine, job, describe(error))
        report_final(state.progress, state.engine, job)
        raise Reject(describe(error), requeue=False) from error
    if outcome is Outcome.PAUSED:
        hand_on(task.app, job)
    elif outcome is Outcome.WAITING:
        # Not a retry: the message keeps its count, and comes back after the wait.
        hand_on(task.app, job, retries=retries, tenant_wait=state.settings.tenant_wait_seconds)
    elif outcome is Outcome.FINISHED:
        report_final(state.progress, state.engine, job)
    measures.SEGMENTS.labels(outcome.value).inc()  # after the final event: it is awaited
    return outcome.value


def retry_later(state: _Process, job: uuid.UUID, retries: int, error: BaseException) -> str:
    """Wait in the broker, not in this worker: the delay grows with each retry, with jitter."""
    if retries >= state.settings.max_retries:
        log.error("job %s: giving up after %s retries: %s", job, retries, error)
        try:
            fail_job(state.engine, job, f"gave up after {retries} retries: {describe(error)}")
            report_final(state.progress, state.engine, job)
        except TRANSIENT:
            log.exception("job %s: could not mark it failed", job)
        raise Reject(f"retries exhausted: {describe(error)}", requeue=False) from error
    delays = state.settings.retry_delays_seconds
    delay = delays[min(retries, len(delays) - 1)]
    # Jitter: each message waits 80 to 100% of its queue's delay, so that jobs that failed
    # together do not all come back together. Within one queue the spread is small, so a
    # message never waits long behind another that expires later (expiry is at the head).
    wait = delay * random.uniform(JITTER, 1.0)  # noqa: S311 - not for security
    log.warning(
        "job %s: transient fault (%s), retry %s in %.0fs", job, describe(error), retries + 1, wait
    )
    hand_on(app, job, retries=retries + 1, delay_seconds=delay, wait_seconds=wait)
    measures.RETRIES.inc()
    return "retrying"


def hand_on(celery: Celery, job: uuid.UUID, **options: Any) -> None:
    """Publish the job's next message. If the broker cannot take it, the current message
    goes back to the queue instead: it resumes from the same checkpoint."""
    try:
        publish_job(celery, job, **options)
    except BROKER_FAULTS as error:
        log.warning(
            "job %s: its next message could not be published (%s); this one goes back to the queue",
            job,
            error,
        )
        raise Reject(f"broker unreachable: {error}", requeue=True) from error
