"""Reading the test broker's queues, as an operator would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kombu import Connection

from server.messaging import topology
from server.settings import get_settings


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    reason: str
    headers: dict[str, Any]


def message_count(connection: Connection, queue: str) -> int:
    channel: Any = connection.default_channel
    count: int = channel.queue_declare(queue, passive=True).message_count
    return count


def dead_letters(connection: Connection) -> list[DeadLetter]:
    """Everything in the dead-letter queue; the messages are put back afterwards."""
    dead = next(q for q in topology.build(get_settings()).queues if q.name == topology.DEAD_QUEUE)
    channel: Any = connection.channel()
    bound = dead(channel)
    found, held = [], []
    while (message := bound.get(no_ack=False)) is not None:
        held.append(message)
        args = json.loads(message.body or "[[]]")[0]
        deaths: Any = message.headers.get("x-death") or [{}]
        found.append(DeadLetter(args[0], str(deaths[0].get("reason")), dict(message.headers)))
    for message in held:
        message.requeue()
    channel.close()
    return found
