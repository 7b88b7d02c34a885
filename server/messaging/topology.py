"""Every exchange, queue, binding and argument of the broker, declared in one place.

    imports ──work───► imports.work ────(expired / rejected / delivery limit)──► imports.dlx
       │   ──express─► imports.express ─(the same)────────────────────────────────► │ dead
       ▲                                                                            ▼
       └── imports.retry.<N>s (TTL N s) ◄── imports.retry                      imports.dead
       └── imports.wait.<N>s (a tenant over its running cap) ◄── imports.retry

    imports ──webhook─► webhooks ──(the last attempt failed)──► imports.dlx ──► webhooks.dead
       ▲                   │ an attempt failed
       └── webhooks.retry.<N>s ◄── imports.retry

Small files go to `imports.express`, which a worker of its own serves, so that a small import
never waits behind big ones; retries and continuations go to `imports.work`.

`rabbitmq/definitions.json`, which the broker loads at boot, says the same thing; a test
proves that they agree (`python -m server.messaging.topology` prints the definitions).
Queue arguments cannot change once a queue exists: to change one, use a new queue name.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue

from server.settings import Settings, get_settings

log = logging.getLogger(__name__)

EXCHANGE = "imports"
DEAD_EXCHANGE = "imports.dlx"
RETRY_EXCHANGE = "imports.retry"
WORK_QUEUE = "imports.work"
EXPRESS_QUEUE = "imports.express"
DEAD_QUEUE = "imports.dead"
WORK_KEY = "work"
EXPRESS_KEY = "express"
DEAD_KEY = "dead"
WEBHOOK_QUEUE = "webhooks"
WEBHOOK_DEAD_QUEUE = "webhooks.dead"
WEBHOOK_KEY = "webhook"

# Quorum queues with at-least-once dead-lettering: a message leaves for the dead-letter
# queue only once that queue has confirmed it (RabbitMQ 3.10+; needs reject-publish).
_QUORUM = {"x-queue-type": "quorum"}
_SAFE_DEAD_LETTERS = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def retry_queue_name(delay_seconds: int) -> str:
    return f"imports.retry.{delay_seconds}s"


def wait_queue_name(wait_seconds: int) -> str:
    return f"imports.wait.{wait_seconds}s"


def webhook_retry_queue(delay_seconds: int) -> str:
    return f"webhooks.retry.{delay_seconds}s"


@dataclass(frozen=True)
class Topology:
    exchanges: list[Exchange]
    queues: list[Queue]

    @property
    def work(self) -> Queue:
        return self.queue(WORK_QUEUE)

    @property
    def express(self) -> Queue:
        return self.queue(EXPRESS_QUEUE)

    @property
    def webhooks(self) -> Queue:
        return self.queue(WEBHOOK_QUEUE)

    def queue(self, name: str) -> Queue:
        return next(queue for queue in self.queues if queue.name == name)


def build(settings: Settings) -> Topology:
    imports = Exchange(EXCHANGE, "direct", durable=True)
    dead = Exchange(DEAD_EXCHANGE, "direct", durable=True)
    retry = Exchange(RETRY_EXCHANGE, "direct", durable=True)
    # Order matters: the dead-letter route exists before any queue that dead-letters to it.
    queues = [
        Queue(DEAD_QUEUE, dead, routing_key=DEAD_KEY, durable=True, queue_arguments=_QUORUM),
        Queue(
            WORK_QUEUE,
            imports,
            routing_key=WORK_KEY,
            durable=True,
            queue_arguments=work_arguments(settings),
        ),
        Queue(
            EXPRESS_QUEUE,
            imports,
            routing_key=EXPRESS_KEY,
            durable=True,
            queue_arguments=work_arguments(settings),
        ),
    ]
    queues += [
        Queue(
            retry_queue_name(delay),
            retry,
            routing_key=retry_queue_name(delay),
            durable=True,
            queue_arguments=retry_arguments(delay),
        )
        for delay in settings.retry_delays_seconds
    ]
    # A tenant over its running cap: its job's message waits here, then goes back to work.
    wait = settings.tenant_wait_seconds
    queues.append(
        Queue(
            wait_queue_name(wait),
            retry,
            routing_key=wait_queue_name(wait),
            durable=True,
            queue_arguments=retry_arguments(wait),
        )
    )
    queues += webhook_queues(settings, imports, dead, retry)
    return Topology([dead, retry, imports], queues)


def webhook_queues(
    settings: Settings, imports: Exchange, dead: Exchange, retry: Exchange
) -> list[Queue]:
    """Deliveries, the waits between their attempts, and those given up."""
    return [
        Queue(
            WEBHOOK_DEAD_QUEUE,
            dead,
            routing_key=WEBHOOK_DEAD_QUEUE,
            durable=True,
            queue_arguments=_QUORUM,
        ),
        Queue(
            WEBHOOK_QUEUE,
            imports,
            routing_key=WEBHOOK_KEY,
            durable=True,
            queue_arguments=work_arguments(settings, WEBHOOK_DEAD_QUEUE),
        ),
        *(
            Queue(
                webhook_retry_queue(delay),
                retry,
                routing_key=webhook_retry_queue(delay),
                durable=True,
                queue_arguments=retry_arguments(delay, WEBHOOK_KEY),
            )
            for delay in settings.webhook_retry_delays_seconds
        ),
    ]


def work_arguments(settings: Settings, dead_key: str = DEAD_KEY) -> dict[str, Any]:
    return {
        **_QUORUM,
        "x-message-ttl": settings.work_message_ttl_seconds * 1000,
        "x-delivery-limit": settings.delivery_limit,
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        "x-dead-letter-routing-key": dead_key,
        **_SAFE_DEAD_LETTERS,
    }


def retry_arguments(delay_seconds: int, back_to: str = WORK_KEY) -> dict[str, Any]:
    """A wait queue: nobody consumes it; when a message's time is up it goes back to work
    (or to the webhooks queue)."""
    return {
        **_QUORUM,
        "x-message-ttl": delay_seconds * 1000,
        "x-dead-letter-exchange": EXCHANGE,
        "x-dead-letter-routing-key": back_to,
        **_SAFE_DEAD_LETTERS,
    }


def declare(connection: Connection, topology: Topology) -> None:
    channel = connection.default_channel
    for exchange in topology.exchanges:
        exchange(channel).declare()
    for queue in topology.queues:
        queue(channel).declare()


def declare_if_reachable(settings: Settings, timeout: float = 5.0) -> bool:
    """Declare the topology if the broker answers now; False (and a warning) if not: the
    caller tries again later, and takes uploads meanwhile."""
    try:
        with Connection(settings.broker_url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1)
            declare(connection, build(settings))
    except Exception as error:  # noqa: BLE001 - whatever the cause, the broker is away
        log.warning("the broker is unreachable (%s): jobs are published when it is back", error)
        return False
    return True


def definitions(topology: Topology, vhost: str = "/") -> dict[str, Any]:
    """The same topology in the shape of RabbitMQ's definitions file."""
    return {
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in topology.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": dict(q.queue_arguments or {}),
            }
            for q in topology.queues
        ],
        "bindings": [
            {
                "source": q.exchange.name,
                "vhost": vhost,
                "destination": q.name,
                "destination_type": "queue",
                "routing_key": q.routing_key,
                "arguments": {},
            }
            for q in topology.queues
        ],
    }


if __name__ == "__main__":
    json.dump(definitions(build(get_settings())), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
