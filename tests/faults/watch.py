"""Watching a job from the database while the faults land."""

from __future__ import annotations

from server.jobs.status import FINISHED
from tests.harness import Database


def paused_segments(db: Database, job_id: str) -> tuple[str, int]:
    """The job's status, and how many of its segments ended by handing the job on."""
    found: tuple[str, int] = db.rows(
        "SELECT status, (SELECT count(*) FROM import_segments s WHERE s.job_id = j.id "
        "AND s.outcome = 'paused') FROM import_jobs j WHERE id = %s",
        (job_id,),
    )[0]
    return found


def handed_on(db: Database, job_id: str, before: int) -> str | None:
    """The job's status once one more of its segments has ended, or the job has."""
    status, paused = paused_segments(db, job_id)
    return status if paused > before or status in FINISHED else None


def rows_loaded(db: Database, job_id: str) -> int:
    loaded: int = db.value("SELECT rows_loaded FROM import_jobs WHERE id = %s", (job_id,))
    return loaded
