"""The service's Prometheus metrics: the one home of their names, and where each is counted.

Counters and histograms are counted where things happen: uploads and requests in the API,
segments, retries, job ends, queue waits and load times in the workers. They use
prometheus-client's multiprocess mode: every process of a host (the API, each worker's
pool processes) writes its samples to files of its own in `METRICS_DIR`, and the host's API
serves their sum at /metrics, beside gauges read when scraped (jobs by status, queue depths,
whether the broker answers). A worker host without an API serves its own with
`python -m server.run exporter`. Counters only grow: housekeeping deletes job records, not
what was counted.
"""

from __future__ import annotations

import os
import socket
import time
from typing import NoReturn

from server.settings import get_settings

# prometheus-client picks its storage when it is first imported: the directory comes first.
_DIRECTORY = get_settings().metrics_dir.resolve()
_DIRECTORY.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_DIRECTORY)

from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.registry import Collector  # noqa: E402

from server.jobs.model import Job  # noqa: E402
from server.jobs.status import JobStatus  # noqa: E402

# Each process's files are named after it. Containers sharing the directory (compose's
# `metrics` volume) each count their processes from pid 1: the host name tells them apart.
_HOST = socket.gethostname()
values.ValueClass = values.MultiProcessValue(lambda: f"{_HOST}_{os.getpid()}")  # type: ignore[no-untyped-call]

_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
_BYTES = tuple(float(10**power) for power in range(2, 12))
_RATES = (100, 1_000, 10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000)

UPLOADS = Counter("csv_import_uploads", "Uploads accepted as import jobs.")
UPLOAD_SIZE = Histogram(
    "csv_import_upload_size_bytes", "Size of accepted uploads as stored.", buckets=_BYTES
)
REQUESTS = Counter(
    "csv_import_http_requests", "HTTP requests answered, by route.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "csv_import_http_request_duration_seconds",
    "Time to answer an HTTP request (an event stream: how long it stayed open).",
    ["method", "route"],
    buckets=_SECONDS,
)
SEGMENTS = Counter("csv_import_segments", "Segments run by workers, by outcome.", ["outcome"])
RETRIES = Counter("csv_import_retries", "Transient faults that sent a job to a broker retry queue.")
JOBS_ENDED = Counter("csv_import_jobs_ended", "Jobs that ended, by status.", ["status"])
WEBHOOK_ATTEMPTS = Counter(
    "csv_import_webhook_attempts",
    "Webhook attempts, by outcome: delivered, retrying (to a wait queue), given_up.",
    ["outcome"],
)
for _outcome in ("delivered", "retrying", "given_up"):
    WEBHOOK_ATTEMPTS.labels(_outcome)  # shown at 0 before the first attempt
ROWS_LOADED = Counter("csv_import_rows_loaded", "Rows that landed in targets.")
ROWS_REFUSED = Counter("csv_import_rows_refused", "Rows refused, each with its reason kept.")
QUEUE_WAIT = Histogram(
    "csv_import_queue_wait_seconds",
    "From upload to the start of a job's first segment.",
    buckets=_SECONDS,
)
LOAD_DURATION = Histogram(
    "csv_import_load_duration_seconds",
    "From a completed job's first segment to its end.",
    buckets=_SECONDS,
)
ROWS_PER_SECOND = Histogram(
    "csv_import_rows_per_second", "Rows per second of completed jobs.", buckets=_RATES
)


def first_segment(job: Job) -> None:
    """A worker starts a job's first segment: how long it waited."""
    if job.segments == 1 and job.started_at is not None:
        QUEUE_WAIT.observe(max(0.0, (job.started_at - job.created_at).total_seconds()))


def job_ended(job: Job) -> None:
    """Counted once, by the process that ended the job (a validated job has not ended: its
    commit ends it)."""
    if job.status is JobStatus.VALIDATED:
        return
    JOBS_ENDED.labels(job.status.value).inc()
    ROWS_REFUSED.inc(job.rows_refused)
    if job.status is not JobStatus.COMPLETED:
        return
    ROWS_LOADED.inc(job.rows_loaded)
    if job.started_at is not None and job.finished_at is not None:
        seconds = (job.finished_at - job.started_at).total_seconds()
        LOAD_DURATION.observe(seconds)
        if seconds > 0:
            ROWS_PER_SECOND.observe((job.rows_loaded + job.rows_refused) / seconds)


def host_registry(*live: Collector) -> CollectorRegistry:
    """Every process's samples in METRICS_DIR, and the collectors given."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for collector in live:
        registry.register(collector)
    return registry


def exposition(*live: Collector) -> bytes:
    return generate_latest(host_registry(*live))


def serve_forever(host: str, port: int) -> NoReturn:
    """This host's samples over HTTP, for a worker host without an API."""
    start_http_server(port, addr=host, registry=host_registry())
    while True:
        time.sleep(3600)
