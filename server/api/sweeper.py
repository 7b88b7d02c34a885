"""Publish again the jobs that were committed but never confirmed by the broker, and the
jobs whose message was lost.

A job row is committed before its message is published; if the API dies or the broker
fails in between, the job would wait forever. The sweeper closes that gap. A message can
also be lost after it was confirmed (a queue purged, a broker that lost its data): a job
that no live worker holds, without progress for `LOST_AFTER_SECONDS`, while no message
waits in any queue, is published again. Publishing a job twice is harmless: the job's lock
and checkpoint make the second delivery a no-op. Webhook deliveries that their job's end
did not hand to the broker are published here too. The same background loop runs
housekeeping every `HOUSEKEEPING_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from starlette.concurrency import run_in_threadpool

from server import housekeeping
from server.api.deps import Services
from server.jobs import repository
from server.jobs.status import JobStatus
from server.messaging import depths, topology
from server.messaging.publish import publish_job
from server.progress.writer import ProgressWriter
from server.webhooks.publish import publish_unpublished
from server.work.heartbeat import held_jobs
from server.work.reporting import report_final

log = logging.getLogger(__name__)
BATCH = 100
LOST_TOO_OFTEN = "its message was lost too many times (MAX_RETRIES)"


def sweep_once(services: Services) -> int:
    """Publish the jobs waiting for it, each in a transaction of its own: a publish that
    fails (the broker is away) leaves the jobs published before it marked as published."""
    published = 0
    while published < BATCH and _publish_one(services):
        published += 1
    return published


def _publish_one(services: Services) -> bool:
    """One job committed but never published, locked while it is published and marked."""
    with services.engine.begin() as connection:
        jobs = repository.unpublished_jobs(connection, services.settings.publish_grace_seconds, 1)
        if not jobs:
            return False
        job = jobs[0]
        publish_job(
            services.celery,
            job.id,
            express=job.bytes_total <= services.settings.express_max_bytes,
        )
        repository.mark_published(connection, job.id)
    log.info("job %s: published by the sweeper", job.id)
    return True


def republish_lost(services: Services) -> int:
    """Publish again the jobs whose message is gone; fail one lost too often."""
    settings = services.settings
    with services.engine.connect() as connection:
        if not repository.lost_jobs(connection, settings.lost_after_seconds, 1):
            return 0
    if depths.work_waiting(settings) is not False:
        return 0  # a message waits (it may be theirs), or the broker cannot say
    held = held_jobs(settings.redis_url, settings.worker_gone_seconds)
    if held is None:
        return 0
    with services.engine.begin() as connection:
        lost = repository.lost_jobs(connection, settings.lost_after_seconds, BATCH)
        lost = [job for job in lost if str(job.id) not in held]
        given_up = [job.id for job in lost if job.retries >= settings.max_retries]
        for job_id in given_up:
            repository.end_job(connection, job_id, JobStatus.FAILED, LOST_TOO_OFTEN)
            log.error("job %s: %s", job_id, LOST_TOO_OFTEN)
        again = [job for job in lost if job.id not in given_up]
        for job in again:
            express = job.bytes_total <= settings.express_max_bytes
            publish_job(services.celery, job.id, express=express)
            repository.mark_republished(connection, job.id)
            log.warning("job %s: no worker holds it, no message waits: published again", job.id)
    _report_ends(services, given_up)
    return len(again)


def _report_ends(services: Services, job_ids: list[uuid.UUID]) -> None:
    if job_ids:
        writer = ProgressWriter(services.settings.redis_url)
        for job_id in job_ids:
            report_final(writer, services.engine, job_id)
        writer.close()


async def run_forever(services: Services, declared: bool = True) -> None:
    """The publish sweep, and housekeeping now and then. Until the broker's topology is
    `declared` (the API started without the broker), each round first tries to declare it."""
    settings = services.settings
    every = max(1, round(settings.housekeeping_seconds / settings.publish_sweep_seconds))
    rounds = 0
    while True:
        await asyncio.sleep(settings.publish_sweep_seconds)
        try:
            if not declared:
                declared = await run_in_threadpool(topology.declare_if_reachable, settings)
            if declared:
                await run_in_threadpool(sweep_once, services)
                await run_in_threadpool(republish_lost, services)
                await run_in_threadpool(
                    publish_unpublished,
                    services.celery,
                    services.engine,
                    settings.publish_grace_seconds,
                )
            if rounds % every == 0:
                await run_in_threadpool(
                    housekeeping.clean, services.engine, services.storage, settings
                )
        except Exception:
            log.exception("background round failed")
        rounds += 1
