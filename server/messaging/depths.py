"""How many messages wait in each queue of the topology, asked of the broker itself."""

from __future__ import annotations

from typing import Any

from kombu import Connection

from server.messaging import topology
from server.settings import Settings


def queue_depths(settings: Settings) -> dict[str, int] | None:
    """Every queue's ready messages, or None when the broker does not answer."""
    try:
        with Connection(settings.broker_url, connect_timeout=3) as broker:
            broker.ensure_connection(max_retries=1)
            channel: Any = broker.default_channel
            return {
                queue.name: channel.queue_declare(queue.name, passive=True).message_count
                for queue in topology.build(settings).queues
            }
    except Exception:  # noqa: BLE001 - whatever the cause, the broker is away
        return None


def work_waiting(settings: Settings) -> bool | None:
    """Whether any job's message waits for a worker (work, express, retry queues; not the
    dead letters, nor webhooks); None when the broker does not answer."""
    depths = queue_depths(settings)
    if depths is None:
        return None
    jobs = {q.name for q in topology.build(settings).queues if q.name.startswith("imports.")}
    return any(depths[name] for name in jobs - {topology.DEAD_QUEUE})
