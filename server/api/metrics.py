"""GET /metrics in Prometheus' text format: jobs, rows, load time and queue depths."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from server.api.deps import ServicesDep
from server.jobs import repository
from server.messaging.depths import queue_depths

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
    depths = queue_depths(services.settings)
    lines += [
        "# HELP csv_import_broker_up Whether RabbitMQ gave every queue's depth (1) or not (0).",
        "# TYPE csv_import_broker_up gauge",
        f"csv_import_broker_up {int(depths is not None)}",
        "# HELP csv_import_queue_messages Messages waiting in a broker queue.",
        "# TYPE csv_import_queue_messages gauge",
        *(f'csv_import_queue_messages{{queue="{q}"}} {n}' for q, n in (depths or {}).items()),
    ]
    return "\n".join(lines) + "\n"
