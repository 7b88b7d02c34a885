"""Reading the test broker's queues, as an operator would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kombu import Connection

from server.messaging import topology
from server.settings import Settings, get_settings
from server.setup import ensure_vhost
from tests.conftest import ENV


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


def vhost_beside(suffix: str) -> str:
    """A broker URL for a virtual host of its own, named after the suite's (two runs of the
    suite at once stay apart), made if missing."""
    vhost = Connection(ENV["BROKER_URL"]).virtual_host + suffix
    url = ENV["BROKER_URL"].rsplit("/", 1)[0] + "/" + vhost
    ensure_vhost(Settings(broker_url=url))
    return url


def empty(settings: Settings) -> None:
    """Every queue of the topology these settings make, declared and emptied."""
    with Connection(settings.broker_url) as connection:
        for queue in topology.build(settings).queues:
            queue(connection.default_channel).declare()
            queue(connection.default_channel).purge()
