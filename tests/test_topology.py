"""The broker's topology: one module, the definitions file, and the live broker agree."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import httpx
from kombu import Connection

from server.messaging import topology
from server.settings import Settings
from tests.harness import ROOT, Process, wait_until

MANAGEMENT = "http://127.0.0.1:15672/api"


def as_sets(definitions: dict[str, Any]) -> dict[str, list[str]]:
    return {
        key: sorted(json.dumps(item, sort_keys=True) for item in definitions[key])
        for key in ("exchanges", "queues", "bindings")
    }


def test_definitions_file_says_what_the_module_declares() -> None:
    on_disk = json.loads((ROOT / "rabbitmq" / "definitions.json").read_text())
    assert as_sets(on_disk) == as_sets(topology.definitions(topology.build(Settings())))


def test_the_dead_letter_route_is_declared_before_the_queues_that_use_it() -> None:
    built = topology.build(Settings())
    names = [queue.name for queue in built.queues]
    assert names.index(topology.DEAD_QUEUE) < names.index(topology.WORK_QUEUE)
    assert next(e.name for e in built.exchanges) == topology.DEAD_EXCHANGE
    dead = next(q for q in built.queues if q.name == topology.DEAD_QUEUE)
    assert "x-message-ttl" not in (dead.queue_arguments or {})
    assert "x-max-length" not in (dead.queue_arguments or {})


def management(path: str) -> Any:
    def fetch() -> Any:
        try:
            response = httpx.get(f"{MANAGEMENT}/{path}", auth=("guest", "guest"), timeout=5)
        except httpx.TransportError:
            return None
        # In a list, so that an empty answer still counts as an answer.
        return [response.json()] if response.status_code == 200 else None

    return wait_until(fetch, 60, f"management API did not answer {path}", every=1)[0]


def test_the_live_broker_holds_exactly_the_declared_topology(
    broker: Connection, worker: Process
) -> None:
    vhost = urllib.parse.quote(broker.virtual_host, safe="")
    declared = topology.definitions(topology.build(Settings()), broker.virtual_host)
    queues = {q["name"]: q for q in management(f"queues/{vhost}")}
    # A running worker has created nothing of its own (no pidbox, no delayed-delivery queues).
    assert set(queues) == {q["name"] for q in declared["queues"]}
    for expected in declared["queues"]:
        live = queues[expected["name"]]
        assert live["durable"] is True
        assert live["arguments"] == expected["arguments"]
    exchanges = {e["name"]: e for e in management(f"exchanges/{vhost}")}
    for expected in declared["exchanges"]:
        assert exchanges[expected["name"]]["type"] == expected["type"]
        assert exchanges[expected["name"]]["durable"] is True
    assert management(f"policies/{vhost}") == [], "every argument is on the queues themselves"
    bindings = {
        (b["source"], b["destination"], b["routing_key"])
        for b in management(f"bindings/{vhost}")
        if b["source"]
    }
    assert bindings == {
        (b["source"], b["destination"], b["routing_key"]) for b in declared["bindings"]
    }
