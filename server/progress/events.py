"""What a progress event says, computed from the job's counts (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TERMINAL = ("completed", "failed", "cancelled")
# At most about four events a second per job, whatever the batch size.
MIN_INTERVAL_SECONDS = 0.25


def snapshot_key(job_id: object) -> str:
    return f"csvimport:job:{job_id}:snapshot"


def stream_key(job_id: object) -> str:
    return f"csvimport:job:{job_id}:events"


def event_fields(job: Any, rate: float | None = None, eta: float | None = None) -> dict[str, Any]:
    """The fields of an event, from anything shaped like a job row."""
    done = min(job.checkpoint_offset, job.bytes_total)
    percent = round(100 * done / job.bytes_total, 1) if job.bytes_total else 0.0
    return {
        "status": job.status,
        "rows_loaded": job.rows_loaded,
        "rows_refused": job.rows_refused,
        "bytes_done": done,
        "bytes_total": job.bytes_total,
        "percent": percent,
        "rows_per_second": None if rate is None else round(rate, 1),
        "eta_seconds": None if eta is None else round(eta, 1),
        "error": job.error,
    }


@dataclass
class Pace:
    """Rows per second and time left over one segment, and the throttle on events."""

    start_rows: int
    start_bytes: int
    started: float
    last_sent: float = 0.0

    def due(self, now: float) -> bool:
        if self.last_sent and now - self.last_sent < MIN_INTERVAL_SECONDS:
            return False
        self.last_sent = now
        return True

    def rates(self, rows: int, offset: int, total: int, now: float) -> tuple[float, float | None]:
        elapsed = max(now - self.started, 1e-6)
        byte_rate = (offset - self.start_bytes) / elapsed
        eta = (total - offset) / byte_rate if byte_rate > 0 else None
        return (rows - self.start_rows) / elapsed, eta
