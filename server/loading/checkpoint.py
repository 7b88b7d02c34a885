"""One batch, committed whole: staged rows, refused rows, the job's checkpoint and counts.

The checkpoint only moves from the offset this runner read it at. If it moved meanwhile,
someone else loaded this part of the file, and the whole batch rolls back: a row is never
staged twice, even if the job's lock were ever lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from sqlalchemy import Connection

from server.csvfile.convert import Problem
from server.csvfile.reader import Record
from server.db import raw_cursor
from server.jobs import repository
from server.jobs.model import Checkpoint, RefusedRow
from server.loading import staging
from server.loading.batches import Batch

Refused = Sequence[tuple[Record, list[Problem]]]
# A cancel interrupts the job's statement (see jobs.repository.interrupt); the flag is also
# read between batches, for a cancel that came between two statements, at most this often.
CANCEL_CHECK_SECONDS = 0.5


class CheckpointMoved(RuntimeError):
    """Another runner advanced this job's checkpoint: this one must stop."""


def commit_batch(connection: Connection, plan: staging.Stage, batch: Batch) -> Checkpoint:
    """Stage the batch and move the checkpoint from where the batch starts to its end."""
    with connection.begin():
        refused = staging.stage(raw_cursor(connection), plan, batch)
        save_refused(connection, plan.job_id, refused)
        at = repository.advance(
            connection,
            plan.job_id,
            batch.start_offset,
            batch.end_offset,
            batch.next_line,
            batch.rows - len(refused),
            len(refused),
            batch.careful,
        )
        if at is None:
            raise CheckpointMoved(
                f"job {plan.job_id}: checkpoint moved away from byte {batch.start_offset}"
            )
        return at


class InOneTransaction:
    """Batches of a job loaded in one transaction: the rows go straight to the target, and
    the checkpoint only moves in memory (the transaction commits when the job completes).
    A row that PostgreSQL refuses is an error here: the job is then loaded staged."""

    def __init__(self, connection: Connection, plan: staging.Stage, at: Checkpoint) -> None:
        self.connection, self.plan, self.at = connection, plan, at
        self.careful = 0
        self.checked = time.monotonic()

    def __call__(self, batch: Batch) -> Checkpoint:
        refused = staging.stage(raw_cursor(self.connection), self.plan, batch, careful=False)
        save_refused(self.connection, self.plan.job_id, refused)
        self.careful += batch.careful
        cancel = False
        if time.monotonic() - self.checked >= CANCEL_CHECK_SECONDS:
            cancel = repository.cancel_requested(self.connection, self.plan.job_id)
            self.checked = time.monotonic()
        self.at = Checkpoint(
            batch.end_offset,
            batch.next_line,
            self.at.rows_loaded + batch.rows - len(refused),
            self.at.rows_refused + len(refused),
            cancel,
        )
        return self.at


def save_refused(connection: Connection, job_id: uuid.UUID, refused: Refused) -> None:
    repository.save_refused(
        connection, job_id, [refusal(record, problems) for record, problems in refused]
    )


def refusal(record: Record, problems: list[Problem]) -> RefusedRow:
    first = problems[0]
    message = "; ".join(f"{p.column}: {p.message}" if p.column else p.message for p in problems)
    # PostgreSQL text cannot hold NUL; everything else is kept exactly as it was.
    raw = record.raw.replace("\x00", "\ufffd")
    return RefusedRow(
        record.line,
        first.column,
        first.code,
        message,
        raw,
        tuple(problem.as_dict() for problem in problems),
    )
