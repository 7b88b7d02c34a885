"""The life of a job: the one list of its statuses, and which of them are final.

queued ──► running ──► completed
   │          ├──────► failed      (a replay or a retry puts it back to queued)
   └──────────┴──────► cancelled
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


# A job in one of these has ended: nothing runs it, and its event stream has closed.
FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
# A job in one of these still has work to do: a worker may take it.
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
