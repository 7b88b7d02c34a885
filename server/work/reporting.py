"""Progress of one segment, sent to Redis after each committed batch and at the end."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Engine

from server import measures
from server.jobs.model import Checkpoint, Job
from server.jobs.repository import get_job
from server.jobs.status import JobStatus
from server.progress.events import Pace, Progress, event_fields
from server.progress.writer import ProgressWriter
from server.webhooks.publish import publish_after_end
from server.work.celery_app import app


class SegmentReporter:
    def __init__(self, writer: ProgressWriter) -> None:
        self.writer = writer
        self.started = time.monotonic()
        self.pace: Pace | None = None

    def batch(self, job: Job, at: Checkpoint) -> None:
        if self.pace is None:
            self.pace = Pace(
                job.rows_loaded + job.rows_refused, job.checkpoint_offset, self.started
            )
        now = time.monotonic()
        if not self.pace.due(now):
            return
        rate, eta = self.pace.rates(
            at.rows_loaded + at.rows_refused, at.offset, job.bytes_total, now
        )
        state = Progress(
            JobStatus.RUNNING,
            at.rows_loaded,
            at.rows_refused,
            min(at.offset, job.bytes_total),
            job.bytes_total,
        )
        self.writer.write(job.id, event_fields(state, rate, eta))


def report_final(writer: ProgressWriter, engine: Engine, job_id: uuid.UUID) -> None:
    """The job row is the truth: its final state is the last event. Called once, by the
    process that ended the job: what the job did is counted here too, and its webhook
    (made with its end) goes to the broker."""
    with engine.connect() as connection:
        job = get_job(connection, job_id)
    if job is not None:
        writer.write(job_id, event_fields(Progress.of(job), average_rate(job)))
        measures.job_ended(job)
        if job.callback_url is not None:
            publish_after_end(app, engine, job_id)


def average_rate(job: Job) -> float | None:
    """Rows per second over the whole job, for its final event."""
    if job.started_at is None or job.finished_at is None:
        return None
    seconds = (job.finished_at - job.started_at).total_seconds()
    return (job.rows_loaded + job.rows_refused) / seconds if seconds > 0 else None
