"""The life of a job: the one list of its statuses, and which of them are final.

queued ──► running ──► completed
   │          ├──────► failed      (a replay or a retry puts it back to queued)
   │          ├──────► validated   (a dry run: staged and checked; a commit puts it back
   │          │            │        to queued, to be published; a cancel or the
   └──────────┴────────────┴──────► cancelled   expiry of VALIDATED_TTL_SECONDS)
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    VALIDATED = "validated"

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def at_rest(self) -> bool:
        return self in AT_REST


# A job in one of these has ended: nothing runs it, and its event stream has closed.
FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
# A job in one of these still has work to do: a worker may take it.
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
# A job in one of these is at rest: nothing runs it, and its event stream has closed (a
# validated job's rows wait, staged, for a commit).
AT_REST = FINISHED | {JobStatus.VALIDATED}
