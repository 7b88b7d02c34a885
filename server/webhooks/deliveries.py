"""The delivery records: one per job end, and what each attempt found."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, func, select, update

from server.webhooks.tables import webhook_deliveries

DeliveryStatus = Literal["pending", "delivered", "failed"]
_ERROR_LENGTH = 500
d = webhook_deliveries.c


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    job_id: uuid.UUID
    event: str
    url: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    body: str | None
    created_at: datetime
    published_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Delivery:
        return cls(**row)


def of_jobs(
    connection: Connection, job_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[Delivery]]:
    """Each job's deliveries, oldest first."""
    found: dict[uuid.UUID, list[Delivery]] = {}
    ids = list(job_ids)
    if not ids:
        return found
    query = select(webhook_deliveries).where(d.job_id.in_(ids)).order_by(d.created_at, d.id)
    for row in connection.execute(query):
        delivery = Delivery.from_row(row._mapping)
        found.setdefault(delivery.job_id, []).append(delivery)
    return found


def unpublished(
    connection: Connection, grace_seconds: float, limit: int, job_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Deliveries not yet handed to the broker (older than `grace_seconds`, or a job's
    own), locked so that two publishers do not both publish one."""
    query = (
        select(d.id)
        .where(d.published_at.is_(None), d.status == "pending")
        .order_by(d.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if job_id is not None:
        query = query.where(d.job_id == job_id)
    else:
        query = query.where(d.created_at < func.now() - timedelta(seconds=grace_seconds))
    return list(connection.execute(query).scalars())


def mark_published(connection: Connection, delivery_ids: list[uuid.UUID]) -> None:
    connection.execute(
        update(webhook_deliveries).where(d.id.in_(delivery_ids)).values(published_at=func.now())
    )


def lock(connection: Connection, delivery_id: uuid.UUID) -> Delivery | None:
    """The delivery, held until the transaction ends; None if another attempt holds it."""
    row = connection.execute(
        select(webhook_deliveries).where(d.id == delivery_id).with_for_update(skip_locked=True)
    ).first()
    return None if row is None else Delivery.from_row(row._mapping)


def keep_body(connection: Connection, delivery_id: uuid.UUID, body: str) -> None:
    connection.execute(update(webhook_deliveries).where(d.id == delivery_id).values(body=body))


def record_attempt(
    connection: Connection,
    delivery_id: uuid.UUID,
    status: DeliveryStatus,
    status_code: int | None,
    error: str | None,
) -> int:
    """One more attempt and what it found; the number of attempts so far."""
    done = func.clock_timestamp()
    attempts: int = connection.execute(
        update(webhook_deliveries)
        .where(d.id == delivery_id)
        .values(
            status=status,
            attempts=d.attempts + 1,
            last_status_code=status_code,
            last_error=None if error is None else error[:_ERROR_LENGTH],
            last_attempt_at=done,
            delivered_at=done if status == "delivered" else None,
        )
        .returning(d.attempts)
    ).scalar_one()
    return attempts
