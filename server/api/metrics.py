"""GET /metrics in Prometheus' text format: jobs, rows, load time and queue depths."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from kombu import Connection

from server.api.deps import ServicesDep
from server.jobs import repository
from server.messaging import topology
from server.settings import Settings

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics: jobs by status, rows, load seconds, queue depths",
)
def metrics(services: ServicesDep) -> str:
    with services.engine.connect() as connection:
        by_status = repository.count_by_status(connection)
        totals = repository.totals(connection)
    lines = [
        "# HELP csv_import_jobs Import jobs by status.",
        "# TYPE csv_import_jobs gauge",
        *(f'csv_import_jobs{{status="{status}"}} {count}' for status, count in by_status.items()),
        "# HELP csv_import_rows_loaded_total Rows that landed in targets.",
        "# TYPE csv_import_rows_loaded_total counter",
        f"csv_import_rows_loaded_total {totals.rows_loaded}",
        "# HELP csv_import_rows_refused_total Rows refused, with a reason kept for each.",
        "# TYPE csv_import_rows_refused_total counter",
        f"csv_import_rows_refused_total {totals.rows_refused}",
        "# HELP csv_import_load_seconds_total Time from start to end of completed imports.",
        "# TYPE csv_import_load_seconds_total counter",
        f"csv_import_load_seconds_total {totals.load_seconds:.3f}",
    ]
    depths = _queue_depths(services.settings)
    lines += [
        "# HELP csv_import_broker_up Whether RabbitMQ gave every queue's depth (1) or not (0).",
        "# TYPE csv_import_broker_up gauge",
        f"csv_import_broker_up {int(depths is not None)}",
        "# HELP csv_import_queue_messages Messages waiting in a broker queue.",
        "# TYPE csv_import_queue_messages gauge",
        *(f'csv_import_queue_messages{{queue="{q}"}} {n}' for q, n in (depths or {}).items()),
    ]
    return "\n".join(lines) + "\n"


def _queue_depths(settings: Settings) -> dict[str, int] | None:
    """Every queue's depth, or None when the broker does not answer: a broker that is away
    must not cost the scrape the database's figures."""
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
