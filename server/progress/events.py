"""What a progress event says, computed from the job's counts (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.jobs.model import Job
from server.jobs.status import AT_REST, JobStatus

# At most about four events a second per job, whatever the batch size.
MIN_INTERVAL_SECONDS = 0.25


def snapshot_key(job_id: object) -> str:
    return f"csvimport:job:{job_id}:snapshot"


def stream_key(job_id: object) -> str:
    return f"csvimport:job:{job_id}:events"


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a job stands, as its events tell it."""

    status: JobStatus
    rows_loaded: int
    rows_refused: int
    bytes_done: int
    bytes_total: int
    error: str | None = None
    rows_superseded: int = 0

    @classmethod
    def of(cls, job: Job) -> Progress:
        return cls(
            job.status,
            job.rows_loaded,
            job.rows_refused,
            job.bytes_done,
            job.bytes_total,
            job.error,
            job.rows_superseded,
        )

    @property
    def finished(self) -> bool:
        """Its stream ends here: the job ended, or rests validated."""
        return self.status in AT_REST


def event_fields(
    progress: Progress, rate: float | None = None, eta: float | None = None
) -> dict[str, Any]:
    """The fields of an event."""
    total = progress.bytes_total
    percent = round(100 * progress.bytes_done / total, 1) if total else 0.0
    return {
        "status": progress.status.value,
        "rows_loaded": progress.rows_loaded,
        "rows_refused": progress.rows_refused,
        "rows_superseded": progress.rows_superseded,
        "bytes_done": progress.bytes_done,
        "bytes_total": total,
        "percent": percent,
        "rows_per_second": None if rate is None else round(rate, 1),
        "eta_seconds": None if eta is None else round(eta, 1),
        "error": progress.error,
    }


def is_final(fields: dict[str, Any]) -> bool:
    """Whether an event's fields end the job's stream (it ended, or rests validated)."""
    return fields["status"] in AT_REST


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
