"""The worker's consumer, without native delayed delivery.

Celery adds a bootstep that declares 28 `celery_delayed_*` exchanges and queues whenever
it sees a quorum queue. This service never uses countdowns (retries wait in the broker's
own wait queues), and no queue may be created outside the topology module.
"""

from __future__ import annotations

from celery.worker.consumer import Consumer

_DELAYED_DELIVERY = "celery.worker.consumer.delayed_delivery:DelayedDelivery"


class ImportConsumer(Consumer):
    class Blueprint(Consumer.Blueprint):  # type: ignore[valid-type,misc]
        default_steps = [
            step for step in Consumer.Blueprint.default_steps if step != _DELAYED_DELIVERY
        ]
