"""Housekeeping: nothing grows without bound.

After `RETENTION_SECONDS`, a finished job's uploaded file, staging table and Redis keys are
removed (a failed job can be replayed until then). After `RECORD_RETENTION_SECONDS`, its
record goes too, with its refused rows and segment log. Staging tables without a live job
and half-written uploads are removed as well. Runs in the API's background loop; several
API processes share the work without doing it twice (rows are locked, SKIP LOCKED).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import redis
from sqlalchemy import Engine, text

from server.loading import staging
from server.loading.checkpoint import raw_cursor
from server.progress.events import snapshot_key, stream_key
from server.settings import Settings
from server.storage import Storage

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class Cleaned:
    jobs: int = 0
    records: int = 0
    orphans: int = 0
    parts: int = 0


def clean(engine: Engine, storage: Storage, settings: Settings) -> Cleaned:
    result = Cleaned()
    result.jobs = clean_finished_jobs(engine, storage, settings)
    with engine.begin() as connection:
        result.records = connection.execute(text(
            "DELETE FROM import_jobs WHERE cleaned_at IS NOT NULL "
            "AND finished_at < now() - make_interval(secs => :age)"),
            {"age": settings.record_retention_seconds}).rowcount
        result.orphans = drop_orphan_staging(raw_cursor(connection))
    result.parts = storage.remove_stale_parts(older_than_seconds=24 * 3600)
    if any(vars(result).values()):
        log.info("housekeeping: %s", result)
    return result


def clean_finished_jobs(engine: Engine, storage: Storage, settings: Settings) -> int:
    with engine.begin() as connection:
        jobs = connection.execute(text(
            "SELECT id, file_key FROM import_jobs WHERE cleaned_at IS NULL "
            "AND finished_at < now() - make_interval(secs => :age) "
            "ORDER BY finished_at LIMIT :limit FOR UPDATE SKIP LOCKED"),
            {"age": settings.retention_seconds, "limit": BATCH}).all()
        cursor = raw_cursor(connection)
        for job in jobs:
            storage.delete(job.file_key)
            staging.drop(cursor, job.id)
        forget_progress(settings.redis_url, [job.id for job in jobs])
        connection.execute(text("UPDATE import_jobs SET cleaned_at = now() "
                                "WHERE id = ANY(:ids)"), {"ids": [job.id for job in jobs]})
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


def drop_orphan_staging(cursor: object) -> int:
    """Staging tables whose job is gone or cleaned."""
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT t.tablename FROM pg_tables t LEFT JOIN import_jobs j "
        "ON t.tablename = 'job_' || replace(j.id::text, '-', '') "
        "WHERE t.schemaname = %s AND (j.id IS NULL OR j.cleaned_at IS NOT NULL)",
        (staging.SCHEMA,))
    names = [row[0] for row in cursor.fetchall()]  # type: ignore[attr-defined]
    for name in names:
        staging.drop(cursor, uuid.UUID(name.removeprefix("job_")))
    return len(names)
