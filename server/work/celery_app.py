"""The Celery app. Every setting here exists for a reason: see the comments."""

from __future__ import annotations

import celery.apps.worker
from celery import Celery
from celery.signals import setup_logging

from server import logs
from server.messaging import topology
from server.settings import get_settings


def logging_is_ours(**_: object) -> None:
    """With a receiver of `setup_logging`, Celery leaves logging as it is."""


def make_app() -> Celery:
    settings = get_settings()
    app = Celery("csv_import", set_as_current=True)
    queues = topology.build(settings)
    app.conf.update(
        broker_url=settings.broker_url,
        # A publish is only done when the broker confirms it (a broker alarm can drop it).
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        # Every queue by default; `-Q imports.express,webhooks` makes a worker that serves
        # small jobs and webhooks only (`make run` and docker compose start one).
        task_queues=[queues.work, queues.express, queues.webhooks],
        task_default_queue=topology.WORK_QUEUE,
        task_default_exchange=topology.EXCHANGE,
        task_default_routing_key=topology.WORK_KEY,
        # Queues come from the topology module only, with their arguments.
        task_create_missing_queues=False,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # Ack after the work, requeue if the worker process dies, and do not ack failures,
        # so that they reach the dead-letter queue.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure=False,
        task_acks_on_timeout=False,
        # A task still running when the broker connection is lost can no longer ack its
        # message, which the broker gives out again: stop the task (it loses at most the
        # batch it was in) rather than let it run on beside its own redelivery.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_prefetch_multiplier=1,
        # Below the broker's consumer timeout: a segment never holds a delivery that long.
        task_soft_time_limit=settings.soft_time_limit_seconds,
        task_time_limit=settings.hard_time_limit_seconds,
        # No remote control or event queues: nothing but the topology exists on the broker.
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_consumer="server.work.consumer:ImportConsumer",
        worker_hijack_root_logger=False,
        include=["server.work.tasks", "server.webhooks.deliver"],
    )
    if settings.log_format == "json":
        # From the start, before the worker warns of anything: JSON lines like the API's.
        logs.configure(settings)
        setup_logging.connect(logging_is_ours, weak=False)
        # What the worker says from its signal handlers bypasses logging: JSON all the same.
        celery.apps.worker.safe_say = logs.say  # type: ignore[attr-defined]
    return app


app = make_app()
