"""The task that makes one attempt of a delivery, and schedules the next or gives up."""

from __future__ import annotations

import logging
import uuid
from typing import Literal

from celery import Task
from celery.exceptions import Reject
from sqlalchemy import Connection

from server import logs, measures
from server.api.views import job_view
from server.jobs.model import Job
from server.jobs.repository import get_job
from server.settings import Settings
from server.webhooks import deliveries, endpoints
from server.webhooks.deliveries import Delivery, DeliveryStatus
from server.webhooks.publish import TASK_NAME, publish_delivery
from server.webhooks.send import Attempt, attempt, body_of
from server.work.celery_app import app
from server.work.tasks import BROKER_FAULTS, process

log = logging.getLogger(__name__)
Outcome = Literal["delivered", "retrying", "given_up"]
_STATUS: dict[Outcome, DeliveryStatus] = {
    "delivered": "delivered",
    "retrying": "pending",
    "given_up": "failed",
}


@app.task(name=TASK_NAME, bind=True)
def deliver(self: Task[..., str], delivery_id: str) -> str:
    state = process()
    with state.engine.begin() as connection:
        delivery = deliveries.lock(connection, uuid.UUID(delivery_id))
        if delivery is None or delivery.status != "pending":
            return "nothing to do"  # delivered, given up, or another attempt holds it
        with logs.scope(job_id=str(delivery.job_id)):
            found, attempts = _attempt(connection, delivery, state.settings)
    return _after(self, delivery, found, attempts, state.settings)


def _attempt(connection: Connection, delivery: Delivery, settings: Settings) -> tuple[Attempt, int]:
    """Post while the row is locked; what the attempt found is committed with it."""
    job = get_job(connection, delivery.job_id)
    assert job is not None  # the delivery's foreign key holds it
    body = delivery.body or _body(connection, delivery, job, settings)
    tenant = endpoints.endpoint(connection, job.tenant)
    secret = None if tenant is None else tenant.secret
    if secret is None:
        found = Attempt(False, error="the tenant has no webhook secret", retry=False)
    else:
        found = attempt(
            delivery.url,
            secret,
            delivery.id,
            body,
            settings.outbound_allow_networks,
            settings.webhook_timeout_seconds,
        )
    attempts = delivery.attempts + 1
    status = _STATUS[_outcome(found, attempts, settings)]
    deliveries.record_attempt(connection, delivery.id, status, found.status_code, found.error)
    return found, attempts


def _after(
    task: Task[..., str], delivery: Delivery, found: Attempt, attempts: int, settings: Settings
) -> str:
    outcome = _outcome(found, attempts, settings)
    measures.WEBHOOK_ATTEMPTS.labels(outcome).inc()
    if outcome == "delivered":
        log.info("webhook %s of job %s: delivered", delivery.id, delivery.job_id)
        return outcome
    if outcome == "given_up":
        log.error(
            "webhook %s of job %s: given up after %s attempts: %s",
            delivery.id,
            delivery.job_id,
            attempts,
            found.error,
        )
        raise Reject(f"webhook given up: {found.error}", requeue=False)
    delay = settings.webhook_retry_delays_seconds[attempts - 1]
    log.warning(
        "webhook %s of job %s: attempt %s failed (%s), next in %ss",
        delivery.id,
        delivery.job_id,
        attempts,
        found.error,
        delay,
    )
    try:
        publish_delivery(task.app, delivery.id, delay_seconds=delay)
    except BROKER_FAULTS as error:
        raise Reject(f"broker unreachable: {error}", requeue=True) from error
    return outcome


def _outcome(found: Attempt, attempts: int, settings: Settings) -> Outcome:
    """No attempt follows one that cannot do better, nor the one after the last delay."""
    if found.delivered:
        return "delivered"
    if not found.retry or attempts > len(settings.webhook_retry_delays_seconds):
        return "given_up"
    return "retrying"


def _body(connection: Connection, delivery: Delivery, job: Job, settings: Settings) -> str:
    """The job's view as it ended, made once and kept: later attempts send the same bytes."""
    view = job_view(job, f"{settings.base_url}/imports/{job.id}", "")
    data = view.model_dump(mode="json", exclude={"events_url", "deliveries"})
    moment = job.finished_at or delivery.created_at
    body = body_of({"type": delivery.event, "timestamp": moment.isoformat(), "data": data})
    deliveries.keep_body(connection, delivery.id, body)
    return body
