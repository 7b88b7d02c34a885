"""GET /metrics in Prometheus' text format: what every process of this host counted
(server/measures.py), and gauges read when scraped — jobs by status, every queue's depth,
and whether the broker answered — cached for `METRICS_CACHE_SECONDS`, so that many
scrapers cost one query, and a broker that is away costs only `csv_import_broker_up 0`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric

from server import measures
from server.api.deps import Services, ServicesDep
from server.jobs import repository
from server.jobs.status import JobStatus
from server.messaging.depths import queue_depths

router = APIRouter(tags=["operations"])


@dataclass(frozen=True)
class Reading:
    at: float
    jobs: dict[JobStatus, int]
    queues: dict[str, int] | None


class Gauges:
    """The gauges, read at most once per `METRICS_CACHE_SECONDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: Reading | None = None

    def read(self, services: Services) -> Reading:
        with self._lock:
            age = services.settings.metrics_cache_seconds
            if self._last is None or time.monotonic() - self._last.at >= age:
                with services.engine.connect() as connection:
                    jobs = repository.count_by_status(connection)
                self._last = Reading(time.monotonic(), jobs, queue_depths(services.settings))
            return self._last


GAUGES = Gauges()


class Live:
    """A collector of one reading, for one scrape."""

    def __init__(self, reading: Reading) -> None:
        self.reading = reading

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("csv_import_jobs", "Import jobs by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], self.reading.jobs.get(status, 0))
        yield jobs
        queues = self.reading.queues
        yield GaugeMetricFamily(
            "csv_import_broker_up",
            "Whether RabbitMQ gave every queue's depth (1) or not (0).",
            value=int(queues is not None),
        )
        depth = GaugeMetricFamily(
            "csv_import_queue_messages", "Messages waiting in a broker queue.", labels=["queue"]
        )
        for queue, count in (queues or {}).items():
            depth.add_metric([queue], count)
        yield depth


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics: uploads, requests, segments, job ends, rows, load and "
    "queue-wait times, jobs by status, queue depths",
)
def metrics(services: ServicesDep) -> Response:
    body = measures.exposition(Live(GAUGES.read(services)))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
