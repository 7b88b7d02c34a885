"""Queries on job records and refused rows, shared by the API and the workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select, text, update

from server.jobs.tables import FINISHED, import_jobs, import_segments, refused_rows


def insert_job(connection: Connection, values: dict[str, Any]) -> None:
    connection.execute(import_jobs.insert().values(**values))


def get_job(connection: Connection, job_id: uuid.UUID) -> Row[Any] | None:
    return connection.execute(select(import_jobs).where(import_jobs.c.id == job_id)).first()


def tenant_job(connection: Connection, tenant: str, job_id: uuid.UUID) -> Row[Any] | None:
    """A job as its tenant sees it: another tenant's job is not there at all."""
    query = select(import_jobs).where(import_jobs.c.id == job_id,
                                      import_jobs.c.tenant == tenant)
    return connection.execute(query).first()


def job_by_idempotency_key(connection: Connection, tenant: str, key: str) -> Row[Any] | None:
    query = select(import_jobs).where(import_jobs.c.tenant == tenant,
                                      import_jobs.c.idempotency_key == key)
    return connection.execute(query).first()


def list_jobs(connection: Connection, tenant: str, limit: int, offset: int) -> Sequence[Row[Any]]:
    query = (select(import_jobs).where(import_jobs.c.tenant == tenant)
             .order_by(import_jobs.c.created_at.desc(), import_jobs.c.id)
             .limit(limit).offset(offset))
    return connection.execute(query).all()


def mark_published(connection: Connection, job_id: uuid.UUID) -> None:
    connection.execute(update(import_jobs).where(import_jobs.c.id == job_id)
                       .values(published_at=func.now()))


def unpublished_jobs(
    connection: Connection, grace_seconds: float, limit: int
) -> list[tuple[uuid.UUID, int]]:
    """Jobs (id, file size) committed but never confirmed by the broker; locked so that two
    sweepers running at once do not both publish the same job."""
    query = text(
        """
        SELECT id, bytes_total FROM import_jobs
        WHERE status = 'queued' AND published_at IS NULL
          AND created_at < now() - make_interval(secs => :grace)
        ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED
        """
    )
    rows = connection.execute(query, {"grace": grace_seconds, "limit": limit})
    return [(row.id, row.bytes_total) for row in rows]


def request_cancel(connection: Connection, job_id: uuid.UUID) -> Row[Any] | None:
    """A queued job is cancelled at once; a running one stops at its next batch."""
    connection.execute(
        update(import_jobs)
        .where(import_jobs.c.id == job_id, import_jobs.c.status.not_in(FINISHED))
        .values(cancel_requested=True, updated_at=func.now(),
                status=text("CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END"),
                finished_at=text("CASE WHEN status = 'queued' THEN now() END"))
    )
    return get_job(connection, job_id)


def refused_page(
    connection: Connection, job_id: uuid.UUID, after_line: int, limit: int
) -> Sequence[Row[Any]]:
    query = (select(refused_rows).where(refused_rows.c.job_id == job_id,
                                        refused_rows.c.line > after_line)
             .order_by(refused_rows.c.line).limit(limit))
    return connection.execute(query).all()


def iter_refused(
    connection: Connection, job_id: uuid.UUID, chunk: int = 1000
) -> Iterator[Row[Any]]:
    after = 0
    while rows := refused_page(connection, job_id, after, chunk):
        yield from rows
        after = rows[-1].line


def segments(connection: Connection, job_id: uuid.UUID) -> Sequence[Row[Any]]:
    query = (select(import_segments).where(import_segments.c.job_id == job_id)
             .order_by(import_segments.c.id))
    return connection.execute(query).all()
