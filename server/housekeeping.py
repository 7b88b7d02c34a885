"""Housekeeping: nothing grows without bound.

After `RETENTION_SECONDS`, a finished job's uploaded file, staging table and Redis keys are
removed (a failed job can be replayed until then). After `RECORD_RETENTION_SECONDS`, its
record goes too, with its refused rows and segment log. Staging tables without a live job
and half-written uploads are removed as well, and a dry run's validated job that nobody
committed within `VALIDATED_TTL_SECONDS` is cancelled (its staged rows dropped). Runs in
the API's background loop; several API processes share the work without doing it twice
(rows are locked, SKIP LOCKED).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import redis
from sqlalchemy import Connection, Engine

from server.db import raw_cursor
from server.jobs import repository
from server.jobs.status import JobStatus
from server.loading import staging
from server.loading.segment import end_job
from server.progress.events import snapshot_key, stream_key
from server.progress.writer import ProgressWriter
from server.settings import Settings
from server.storage import Storage
from server.work.reporting import report_final

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class Cleaned:
    jobs: int = 0
    records: int = 0
    orphans: int = 0
    parts: int = 0
    expired: int = 0


def clean(engine: Engine, storage: Storage, settings: Settings) -> Cleaned:
    result = Cleaned()
    result.expired = expire_validated(engine, settings)
    result.jobs = clean_finished_jobs(engine, storage, settings)
    with engine.begin() as connection:
        result.records = repository.delete_records(connection, settings.record_retention_seconds)
        result.orphans = drop_orphan_staging(connection)
    result.parts = storage.remove_stale_parts(older_than_seconds=24 * 3600)
    if any(vars(result).values()):
        log.info("housekeeping: %s", result)
    return result


def expire_validated(engine: Engine, settings: Settings) -> int:
    """Validated jobs left uncommitted too long: cancelled, and told as any job end is."""
    why = f"not committed within VALIDATED_TTL_SECONDS ({settings.validated_ttl_seconds:g} s)"
    with engine.begin() as connection:
        expired = repository.expired_validated(connection, settings.validated_ttl_seconds, BATCH)
        for job_id in expired:
            end_job(connection, job_id, JobStatus.CANCELLED, why)
    if expired:
        writer = ProgressWriter(settings.redis_url)
        for job_id in expired:
            report_final(writer, engine, job_id)
        writer.close()
    return len(expired)


def clean_finished_jobs(engine: Engine, storage: Storage, settings: Settings) -> int:
    with engine.begin() as connection:
        jobs = repository.jobs_to_clean(connection, settings.retention_seconds, BATCH)
        cursor = raw_cursor(connection)
        for job in jobs:
            storage.delete(job.file_key)
            staging.drop(cursor, job.id)
        forget_progress(settings.redis_url, [job.id for job in jobs])
        repository.mark_cleaned(connection, [job.id for job in jobs])
    return len(jobs)


def forget_progress(redis_url: str, job_ids: list[uuid.UUID]) -> None:
    if not job_ids:
        return
    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    try:
        client.delete(*[key(job) for job in job_ids for key in (snapshot_key, stream_key)])
    except redis.RedisError as error:
        # The keys expire by themselves a day after the job ended.
        log.warning("housekeeping: Redis keys not removed: %s", error)
    finally:
        client.close()


def drop_orphan_staging(connection: Connection) -> int:
    """Staging tables whose job is gone or cleaned."""
    cursor = raw_cursor(connection)
    staged = staging.staged_jobs(cursor)
    orphans = staged - repository.uncleaned(connection, staged)
    for job_id in orphans:
        staging.drop(cursor, job_id)
    return len(orphans)
