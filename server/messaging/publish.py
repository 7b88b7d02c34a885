"""Publish a job id: persistent, confirmed by the broker, retried a bounded number of times.

Messages carry ids, never file contents. kombu is synchronous: async callers run this in
a thread.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from server.messaging.topology import (
    EXCHANGE,
    EXPRESS_KEY,
    RETRY_EXCHANGE,
    WORK_KEY,
    retry_queue_name,
    wait_queue_name,
)

TASK_NAME = "imports.load"
_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}


def publish_job(
    app: Celery,
    job_id: uuid.UUID,
    retries: int = 0,
    delay_seconds: int | None = None,
    wait_seconds: float | None = None,
    express: bool = False,
    tenant_wait: int | None = None,
) -> None:
    """Send the job to work now (to the express queue if it is a small new job), or to the
    wait queue of `delay_seconds` first; there, `wait_seconds` (at most the queue's delay)
    is this message's own time to wait. `tenant_wait`: to the wait queue of a tenant over
    its running cap, of that many seconds."""
    if tenant_wait is not None:
        exchange, routing_key = RETRY_EXCHANGE, wait_queue_name(tenant_wait)
    elif delay_seconds is None:
        exchange, routing_key = EXCHANGE, EXPRESS_KEY if express else WORK_KEY
    else:
        exchange, routing_key = RETRY_EXCHANGE, retry_queue_name(delay_seconds)
    options: dict[str, Any] = {} if wait_seconds is None else {"expiration": wait_seconds}
    app.send_task(
        TASK_NAME,
        args=[str(job_id)],
        kwargs={"retries": retries},
        exchange=exchange,
        routing_key=routing_key,
        retry=True,
        retry_policy=_RETRY_POLICY,
        **options,
    )
