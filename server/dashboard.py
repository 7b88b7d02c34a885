"""A Grafana dashboard of the service's metrics, made from code so that its queries name only
metrics that exist (a test scrapes /metrics for every one):

    python -m server.dashboard > csv-import-dashboard.json

then import the file in Grafana (Dashboards → New → Import) and pick a Prometheus data source.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

WIDTH = 24  # Grafana's grid
RATE = "5m"


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8


def _p95(histogram: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.95, sum by ({group}) (rate({histogram}_bucket[{RATE}])))"


PANELS = (
    Panel("Broker up", (("min(csv_import_broker_up)", "up"),), kind="stat", width=4),
    Panel("Jobs by status", (("sum by (status) (csv_import_jobs)", "{{status}}"),), width=10),
    Panel(
        "Messages waiting, by queue",
        (("sum by (queue) (csv_import_queue_messages)", "{{queue}}"),),
        width=10,
    ),
    Panel(
        "Uploads and job ends per minute",
        (
            (f"sum(rate(csv_import_uploads_total[{RATE}])) * 60", "uploads"),
            (
                f"sum by (status) (rate(csv_import_jobs_ended_total[{RATE}])) * 60",
                "ended {{status}}",
            ),
        ),
    ),
    Panel(
        "Rows per second",
        (
            (f"sum(rate(csv_import_rows_loaded_total[{RATE}]))", "loaded"),
            (f"sum(rate(csv_import_rows_refused_total[{RATE}]))", "refused"),
        ),
    ),
    Panel(
        "Segments and retries per minute",
        (
            (
                f"sum by (outcome) (rate(csv_import_segments_total[{RATE}])) * 60",
                "segment {{outcome}}",
            ),
            (f"sum(rate(csv_import_retries_total[{RATE}])) * 60", "retries"),
        ),
    ),
    Panel(
        "Queue wait and load duration (p95)",
        (
            (_p95("csv_import_queue_wait_seconds"), "queue wait"),
            (_p95("csv_import_load_duration_seconds"), "load"),
        ),
        unit="s",
    ),
    Panel(
        "HTTP answers per second",
        (
            (
                f"sum by (route, status) (rate(csv_import_http_requests_total[{RATE}]))",
                "{{route}} {{status}}",
            ),
        ),
        unit="reqps",
    ),
    Panel(
        "HTTP answer time (p95)",
        ((_p95("csv_import_http_request_duration_seconds", "route"), "{{route}}"),),
        unit="s",
    ),
    Panel(
        "Upload size (p95) and rows per second of jobs (p95)",
        (
            (_p95("csv_import_upload_size_bytes"), "upload bytes"),
            (_p95("csv_import_rows_per_second"), "rows/s"),
        ),
    ),
    Panel(
        "Webhook attempts per minute",
        (
            (
                f"sum by (outcome) (rate(csv_import_webhook_attempts_total[{RATE}])) * 60",
                "{{outcome}}",
            ),
        ),
    ),
)


def panel_json(panel: Panel, number: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": number,
        "type": panel.kind,
        "title": panel.title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for number, panel in enumerate(PANELS, start=1):
        if x + panel.width > WIDTH:
            x, y = 0, y + 8
        panels.append(panel_json(panel, number, x, y))
        x += panel.width
    return {
        "title": "CSV import",
        "uid": "csv-import",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data"}
            ]
        },
        "panels": panels,
    }


def queries() -> list[str]:
    return [expr for panel in PANELS for expr, _ in panel.queries]


if __name__ == "__main__":
    json.dump(dashboard(), sys.stdout, indent=2)
    sys.stdout.write("\n")
