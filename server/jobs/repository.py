"""Every statement on the job tables (`import_jobs`, `import_segments`, `refused_rows`).

The API, the workers, housekeeping and the dead-letter tool all come here: no other module
of the service writes SQL on these tables (a test holds the line). Each function takes the
caller's connection, so that it joins the caller's transaction: a batch's rows, its refused
rows and the job's checkpoint commit together. Jobs come back as frozen `Job` records.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from server.db import copy_text, raw_cursor
from server.jobs.model import Checkpoint, Job, RefusedRow, SegmentRecord
from server.jobs.status import ACTIVE, FINISHED, JobStatus
from server.jobs.tables import import_jobs, import_segments, refused_rows

jobs = import_jobs.c


def _ago(seconds: float) -> Any:
    return func.now() - timedelta(seconds=seconds)


# --- the API's side ----------------------------------------------------------------------


def insert_job(connection: Connection, values: dict[str, Any]) -> Job:
    row = connection.execute(insert(import_jobs).values(**values).returning(import_jobs)).one()
    return Job.from_row(row._mapping)


def get_job(connection: Connection, job_id: uuid.UUID) -> Job | None:
    return _one(connection, select(import_jobs).where(jobs.id == job_id))


def tenant_of(connection: Connection, job_id: uuid.UUID) -> str | None:
    found: str | None = connection.execute(
        select(jobs.tenant).where(jobs.id == job_id)
    ).scalar_one_or_none()
    return found


def tenant_job(connection: Connection, tenant: str, job_id: uuid.UUID) -> Job | None:
    """A job as its tenant sees it: another tenant's job is not there at all."""
    return _one(connection, select(import_jobs).where(jobs.id == job_id, jobs.tenant == tenant))


def job_by_idempotency_key(connection: Connection, tenant: str, key: str) -> Job | None:
    return _one(
        connection, select(import_jobs).where(jobs.tenant == tenant, jobs.idempotency_key == key)
    )


def stored_bytes(connection: Connection, tenant: str) -> int:
    """What the tenant's jobs hold in storage: their files, until housekeeping removes them."""
    held = connection.execute(
        select(func.coalesce(func.sum(jobs.bytes_total), 0)).where(
            jobs.tenant == tenant, jobs.cleaned_at.is_(None)
        )
    ).scalar_one()
    return int(held)


def list_jobs(connection: Connection, tenant: str, limit: int, offset: int) -> list[Job]:
    query = (
        select(import_jobs)
        .where(jobs.tenant == tenant)
        .order_by(jobs.created_at.desc(), jobs.id)
        .limit(limit)
        .offset(offset)
    )
    return [Job.from_row(row._mapping) for row in connection.execute(query)]


def mark_published(connection: Connection, job_id: uuid.UUID) -> None:
    connection.execute(update(import_jobs).where(jobs.id == job_id).values(published_at=func.now()))


def unpublished_jobs(connection: Connection, grace_seconds: float, limit: int) -> list[Job]:
    """Jobs committed but never confirmed by the broker; locked so that two sweepers
    running at once do not both publish the same job."""
    query = (
        select(import_jobs)
        .where(
            jobs.status == JobStatus.QUEUED,
            jobs.published_at.is_(None),
            jobs.created_at < _ago(grace_seconds),
        )
        .order_by(jobs.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Job.from_row(row._mapping) for row in connection.execute(query)]


def lost_jobs(connection: Connection, quiet_seconds: float, limit: int) -> list[Job]:
    """Jobs published, queued or running, without progress for `quiet_seconds`: the ones
    whose message may be lost. Locked, so that two sweepers do not both publish one."""
    query = (
        select(import_jobs)
        .where(
            jobs.status.in_(ACTIVE),
            jobs.published_at.is_not(None),
            jobs.updated_at < _ago(quiet_seconds),
        )
        .order_by(jobs.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Job.from_row(row._mapping) for row in connection.execute(query)]


def mark_republished(connection: Connection, job_id: uuid.UUID) -> None:
    """Published again: counted as a retry, and quiet again only from now."""
    connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id)
        .values(published_at=func.now(), updated_at=func.now(), retries=jobs.retries + 1)
    )


def request_cancel(connection: Connection, job_id: uuid.UUID) -> Job | None:
    """A queued or validated job is cancelled at once; a running one stops at its next
    batch."""
    queued = jobs.status.in_([JobStatus.QUEUED, JobStatus.VALIDATED])
    connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id, jobs.status.not_in(FINISHED))
        .values(
            cancel_requested=True,
            updated_at=func.now(),
            status=case((queued, JobStatus.CANCELLED.value), else_=jobs.status),
            finished_at=case((queued, func.now()), else_=jobs.finished_at),
        )
    )
    return get_job(connection, job_id)


def refused_page(
    connection: Connection, job_id: uuid.UUID, after_line: int, limit: int
) -> list[RefusedRow]:
    query = (
        select(refused_rows)
        .where(refused_rows.c.job_id == job_id, refused_rows.c.line > after_line)
        .order_by(refused_rows.c.line)
        .limit(limit)
    )
    return [RefusedRow.from_row(row._mapping) for row in connection.execute(query)]


def iter_refused(
    connection: Connection, job_id: uuid.UUID, chunk: int = 1000
) -> Iterator[RefusedRow]:
    after = 0
    while rows := refused_page(connection, job_id, after, chunk):
        yield from rows
        after = rows[-1].line


def segments(connection: Connection, job_id: uuid.UUID) -> list[SegmentRecord]:
    query = (
        select(import_segments)
        .where(import_segments.c.job_id == job_id)
        .order_by(import_segments.c.id)
    )
    return [SegmentRecord.from_row(row._mapping) for row in connection.execute(query)]


# --- the worker's side -------------------------------------------------------------------


def start_segment(connection: Connection, job_id: uuid.UUID, worker: str) -> tuple[Job, int] | None:
    """The job, now running, and the id of the segment this runner starts in the log;
    None if the job is not there to run (finished, or gone)."""
    row = connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id, jobs.status.in_(ACTIVE))
        .values(
            status=JobStatus.RUNNING,
            segments=jobs.segments + 1,
            started_at=func.coalesce(jobs.started_at, func.now()),
            updated_at=func.now(),
        )
        .returning(import_jobs)
    ).first()
    if row is None:
        return None
    job = Job.from_row(row._mapping)
    segment_id: int = connection.execute(
        insert(import_segments)
        .values(
            job_id=job_id,
            worker=worker,
            start_line=job.checkpoint_line,
            start_offset=job.checkpoint_offset,
        )
        .returning(import_segments.c.id)
    ).scalar_one()
    return job, segment_id


def end_segment(connection: Connection, segment_id: int, outcome: str) -> None:
    """The segment ends where its job's checkpoint stands."""
    segment = import_segments.c
    connection.execute(
        update(import_segments)
        .where(segment.id == segment_id, jobs.id == segment.job_id)
        .values(
            outcome=outcome,
            finished_at=func.clock_timestamp(),
            end_line=jobs.checkpoint_line,
            end_offset=jobs.checkpoint_offset,
        )
    )


def advance(
    connection: Connection,
    job_id: uuid.UUID,
    expected: int,
    offset: int,
    line: int,
    loaded: int,
    refused: int,
    careful: int = 0,
) -> Checkpoint | None:
    """Move the checkpoint from `expected` to `offset` and add the batch's counts; None if
    the checkpoint is no longer at `expected` (someone else moved the job on)."""
    row = connection.execute(
        update(import_jobs)
        .where(
            jobs.id == job_id, jobs.checkpoint_offset == expected, jobs.status == JobStatus.RUNNING
        )
        .values(
            checkpoint_offset=offset,
            checkpoint_line=line,
            rows_loaded=jobs.rows_loaded + loaded,
            rows_refused=jobs.rows_refused + refused,
            rows_careful=jobs.rows_careful + careful,
            updated_at=func.now(),
        )
        .returning(
            jobs.checkpoint_offset,
            jobs.checkpoint_line,
            jobs.rows_loaded,
            jobs.rows_refused,
            jobs.cancel_requested,
        )
    ).first()
    return None if row is None else Checkpoint(*row)


def fence(
    connection: Connection, job_id: uuid.UUID, expected: int, line: int, careful: int = 0
) -> bool:
    """For a job loaded in one transaction: whether it is still this runner's (running, its
    checkpoint where the runner read it), recording the line it reached and how many of its
    records went the careful way."""
    done = connection.execute(
        update(import_jobs)
        .where(
            jobs.id == job_id, jobs.status == JobStatus.RUNNING, jobs.checkpoint_offset == expected
        )
        .values(checkpoint_line=line, rows_careful=careful)
    )
    return done.rowcount == 1


def cancel_requested(connection: Connection, job_id: uuid.UUID) -> bool:
    return bool(connection.execute(select(jobs.cancel_requested).where(jobs.id == job_id)).scalar())


def save_refused(connection: Connection, job_id: uuid.UUID, rows: Sequence[RefusedRow]) -> None:
    """With COPY: a file can have millions of refused rows. A row's list of problems is
    stored only when it has more than its first (which its own columns hold)."""
    if not rows:
        return
    job = str(job_id)
    lines = (
        "\t".join(
            (
                job,
                str(row.line),
                copy_text(row.column),
                copy_text(row.code),
                copy_text(row.message),
                copy_text(row.raw),
                copy_text(json.dumps([dict(e) for e in row.errors]))
                if len(row.errors) > 1
                else "[]",
            )
        )
        + "\n"
        for row in rows
    )
    raw_cursor(connection).copy_expert(
        'COPY refused_rows (job_id, line, "column", code, message, raw, errors) FROM STDIN',
        io.StringIO("".join(lines)),
    )


def complete(
    connection: Connection,
    job_id: uuid.UUID,
    published: int,
    loaded: int,
    refused: int,
    superseded: int = 0,
) -> None:
    # clock_timestamp(), not now(): the transaction may have begun long ago (a load in one
    # transaction, a long publish).
    connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id)
        .values(
            status=JobStatus.COMPLETED,
            rows_published=published,
            rows_loaded=loaded,
            rows_refused=refused,
            rows_superseded=superseded,
            checkpoint_offset=jobs.bytes_total,
            finished_at=func.clock_timestamp(),
            updated_at=func.clock_timestamp(),
        )
    )


def unstage(connection: Connection, job_id: uuid.UUID, refused: int, superseded: int) -> None:
    """Staged rows that will not be written after all: refused, or superseded by a later
    line of the file with the same key. The counts still add up to the file's lines."""
    connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id)
        .values(
            rows_loaded=jobs.rows_loaded - refused - superseded,
            rows_refused=jobs.rows_refused + refused,
            rows_superseded=jobs.rows_superseded + superseded,
            updated_at=func.now(),
        )
    )


def validate(
    connection: Connection, job_id: uuid.UUID, loaded: int, refused: int, superseded: int
) -> None:
    """A dry run's end: every line accounted for, the rows to publish staged."""
    connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id)
        .values(
            status=JobStatus.VALIDATED,
            rows_loaded=loaded,
            rows_refused=refused,
            rows_superseded=superseded,
            checkpoint_offset=jobs.bytes_total,
            updated_at=func.clock_timestamp(),
        )
    )


def commit_validated(connection: Connection, job_id: uuid.UUID) -> bool:
    """A validated job back to queued, committed, to be published; False if it was not
    validated (two commits at once: one of them wins)."""
    done = connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id, jobs.status == JobStatus.VALIDATED)
        .values(
            status=JobStatus.QUEUED,
            options=jobs.options.op("||")(cast({"committed": True}, JSONB)),
            published_at=None,
            updated_at=func.now(),
        )
    )
    return done.rowcount == 1


def expired_validated(connection: Connection, ttl_seconds: float, limit: int) -> list[uuid.UUID]:
    """Validated jobs nobody committed within `ttl_seconds`."""
    query = (
        select(jobs.id)
        .where(jobs.status == JobStatus.VALIDATED, jobs.updated_at < _ago(ttl_seconds))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(connection.execute(query).scalars())


def end_job(
    connection: Connection, job_id: uuid.UUID, status: JobStatus, error: str | None
) -> bool:
    """A job that has not ended yet ends with `status`; False if it had ended already."""
    done = connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id, jobs.status.in_([*ACTIVE, JobStatus.VALIDATED]))
        .values(status=status, error=error, finished_at=func.now(), updated_at=func.now())
    )
    return done.rowcount == 1


# --- operators: dead letters, housekeeping, metrics --------------------------------------


def reset_for_replay(connection: Connection, job_id: uuid.UUID) -> None:
    """Back to queued, attempts reset, checkpoint kept; unpublished until confirmed."""
    connection.execute(
        update(import_jobs)
        .where(jobs.id == job_id, jobs.status.in_([*ACTIVE, JobStatus.FAILED]))
        .values(
            status=JobStatus.QUEUED,
            error=None,
            retries=0,
            finished_at=None,
            published_at=None,
            updated_at=func.now(),
        )
    )


def jobs_to_clean(connection: Connection, age_seconds: float, limit: int) -> list[Job]:
    """Finished jobs past their retention whose file and staged rows are still there;
    locked, so that two API processes never clean the same job."""
    query = (
        select(import_jobs)
        .where(jobs.cleaned_at.is_(None), jobs.finished_at < _ago(age_seconds))
        .order_by(jobs.finished_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Job.from_row(row._mapping) for row in connection.execute(query)]


def mark_cleaned(connection: Connection, job_ids: Sequence[uuid.UUID]) -> None:
    if job_ids:
        connection.execute(
            update(import_jobs).where(jobs.id.in_(job_ids)).values(cleaned_at=func.now())
        )


def delete_records(connection: Connection, age_seconds: float) -> int:
    """Records of cleaned jobs past their record retention, with their refused rows and
    segment log (which cascade)."""
    done = connection.execute(
        delete(import_jobs).where(
            jobs.cleaned_at.is_not(None), jobs.finished_at < _ago(age_seconds)
        )
    )
    return done.rowcount


def uncleaned(connection: Connection, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these jobs exist and have not been cleaned."""
    wanted = list(job_ids)
    if not wanted:
        return set()
    query = select(jobs.id).where(jobs.id.in_(wanted), jobs.cleaned_at.is_(None))
    return set(connection.execute(query).scalars())


def count_by_status(connection: Connection) -> dict[JobStatus, int]:
    found = connection.execute(select(jobs.status, func.count()).group_by(jobs.status))
    counts = dict.fromkeys(JobStatus, 0)
    counts.update({JobStatus(status): count for status, count in found})
    return counts


def _one(connection: Connection, query: Any) -> Job | None:
    row = connection.execute(query).first()
    return None if row is None else Job.from_row(row._mapping)
