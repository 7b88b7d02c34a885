"""GET /metrics in Prometheus' text format: jobs, rows, load time and queue depths."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from kombu import Connection
from sqlalchemy import text

from server.api.deps import ServicesDep
from server.jobs.tables import STATUSES
from server.messaging import topology

router = APIRouter(tags=["operations"])

_TOTALS = text(
    """
    SELECT coalesce(sum(rows_loaded) FILTER (WHERE status = 'completed'), 0) AS loaded,
           coalesce(sum(rows_refused), 0) AS refused,
           coalesce(sum(extract(epoch FROM finished_at - started_at))
                    FILTER (WHERE status = 'completed'), 0) AS seconds
    FROM import_jobs
    """
)


@router.get("/metrics", response_class=PlainTextResponse,
            summary="Prometheus metrics: jobs by status, rows, load seconds, queue depths")
def metrics(services: ServicesDep) -> str:
    with services.engine.connect() as connection:
        by_status: dict[str, int] = dict(connection.execute(text(
            "SELECT status, count(*) FROM import_jobs GROUP BY status")).all())
        totals = connection.execute(_TOTALS).one()
    lines = [
        "# HELP csv_import_jobs Import jobs by status.",
        "# TYPE csv_import_jobs gauge",
        *(f'csv_import_jobs{{status="{status}"}} {by_status.get(status, 0)}'
          for status in STATUSES),
        "# HELP csv_import_rows_loaded_total Rows that landed in targets.",
        "# TYPE csv_import_rows_loaded_total counter",
        f"csv_import_rows_loaded_total {totals.loaded}",
        "# HELP csv_import_rows_refused_total Rows refused, with a reason kept for each.",
        "# TYPE csv_import_rows_refused_total counter",
        f"csv_import_rows_refused_total {totals.refused}",
        "# HELP csv_import_load_seconds_total Time from start to end of completed imports.",
        "# TYPE csv_import_load_seconds_total counter",
        f"csv_import_load_seconds_total {float(totals.seconds):.3f}",
        "# HELP csv_import_queue_messages Messages waiting in a broker queue.",
        "# TYPE csv_import_queue_messages gauge",
    ]
    with Connection(services.settings.broker_url, connect_timeout=3) as broker:
        channel: Any = broker.default_channel
        for queue in (topology.WORK_QUEUE, topology.DEAD_QUEUE):
            depth = channel.queue_declare(queue, passive=True).message_count
            lines.append(f'csv_import_queue_messages{{queue="{queue}"}} {depth}')
    return "\n".join(lines) + "\n"
