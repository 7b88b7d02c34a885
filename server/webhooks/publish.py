"""Hand deliveries to the broker: now, or into a wait queue before the next attempt."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from server.messaging.topology import EXCHANGE, RETRY_EXCHANGE, WEBHOOK_KEY, webhook_retry_queue
from server.webhooks import deliveries

log = logging.getLogger(__name__)
TASK_NAME = "webhooks.deliver"
BATCH = 100
_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}


def publish_delivery(app: Celery, delivery_id: uuid.UUID, delay_seconds: int | None = None) -> None:
    """Persistent and confirmed, like a job's message."""
    if delay_seconds is None:
        exchange, routing_key = EXCHANGE, WEBHOOK_KEY
    else:
        exchange, routing_key = RETRY_EXCHANGE, webhook_retry_queue(delay_seconds)
    options: dict[str, Any] = {"exchange": exchange, "routing_key": routing_key}
    app.send_task(
        TASK_NAME, args=[str(delivery_id)], retry=True, retry_policy=_RETRY_POLICY, **options
    )


def publish_unpublished(
    app: Celery, engine: Engine, grace_seconds: float = 0, job_id: uuid.UUID | None = None
) -> int:
    """Publish what waits: a job's deliveries just after it ended (`job_id`), or any left
    unpublished for `grace_seconds` (the sweeper). Marked published only once confirmed."""
    with engine.begin() as connection:
        waiting = deliveries.unpublished(connection, grace_seconds, BATCH, job_id)
        for delivery_id in waiting:
            publish_delivery(app, delivery_id)
        if waiting:
            deliveries.mark_published(connection, waiting)
    return len(waiting)


def publish_after_end(app: Celery, engine: Engine, job_id: uuid.UUID) -> None:
    """Best effort, by the process that ended the job: what fails here, the sweeper
    publishes later."""
    try:
        publish_unpublished(app, engine, job_id=job_id)
    except Exception as error:  # noqa: BLE001 - the sweeper publishes it later
        log.warning("job %s: its webhook will be published later (%s)", job_id, error)
