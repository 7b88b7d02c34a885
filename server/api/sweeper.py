"""Publish again the jobs that were committed but never confirmed by the broker.

A job row is committed before its message is published; if the API dies or the broker
fails in between, the job would wait forever. The sweeper closes that gap. Publishing a
job twice is harmless: the job's lock and checkpoint make the second delivery a no-op.
The same background loop runs housekeeping every `HOUSEKEEPING_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from server import housekeeping
from server.api.deps import Services
from server.jobs import repository
from server.messaging import topology
from server.messaging.publish import publish_job

log = logging.getLogger(__name__)
BATCH = 100


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
            if rounds % every == 0:
                await run_in_threadpool(
                    housekeeping.clean, services.engine, services.storage, settings
                )
        except Exception:
            log.exception("background round failed")
        rounds += 1
