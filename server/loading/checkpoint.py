"""One batch, committed whole: staged rows, refused rows, the job's checkpoint and counts.

The checkpoint only moves from the offset this runner read it at. If it moved meanwhile,
someone else loaded this part of the file, and the whole batch rolls back: a row is never
staged twice, even if the job's lock were ever lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import execute_values
from sqlalchemy import Connection

from server.csvfile.convert import Problem
from server.csvfile.reader import Record
from server.loading import staging
from server.loading.batches import Batch


class CheckpointMoved(RuntimeError):
    """Another runner advanced this job's checkpoint: this one must stop."""


@dataclass(frozen=True)
class Checkpoint:
    offset: int
    line: int
    rows_loaded: int
    rows_refused: int
    cancel_requested: bool


def raw_cursor(connection: Connection) -> Any:
    return connection.connection.driver_connection.cursor()  # type: ignore[union-attr]


def commit_batch(connection: Connection, plan: staging.Stage, batch: Batch) -> Checkpoint:
    """Stage the batch and move the checkpoint from where the batch starts to its end."""
    with connection.begin():
        cursor = raw_cursor(connection)
        refused = staging.stage(cursor, plan, batch)
        save_refused(cursor, plan.job_id, refused)
        loaded = batch.rows - len(refused)
        return advance(cursor, plan.job_id, batch.start_offset, batch.end_offset,
                       batch.next_line, loaded, len(refused))


class InOneTransaction:
    """Batches of a job loaded in one transaction: the rows go straight to the target, and
    the checkpoint only moves in memory (the transaction commits when the job completes).
    A row that PostgreSQL refuses is an error here: the job is then loaded staged."""

    def __init__(self, connection: Connection, plan: staging.Stage, at: Checkpoint) -> None:
        self.connection, self.plan, self.at = connection, plan, at

    def __call__(self, batch: Batch) -> Checkpoint:
        cursor = raw_cursor(self.connection)
        refused = staging.stage(cursor, self.plan, batch, careful=False)
        save_refused(cursor, self.plan.job_id, refused)
        cursor.execute("SELECT cancel_requested FROM import_jobs WHERE id = %s",
                       (self.plan.job_id,))
        (cancel,) = cursor.fetchone()
        self.at = Checkpoint(batch.end_offset, batch.next_line,
                             self.at.rows_loaded + batch.rows - len(refused),
                             self.at.rows_refused + len(refused), cancel)
        return self.at


def advance(
    cursor: Any, job_id: uuid.UUID, expected: int, offset: int, line: int, loaded: int,
    refused: int,
) -> Checkpoint:
    cursor.execute(
        """
        UPDATE import_jobs
        SET checkpoint_offset = %(offset)s, checkpoint_line = %(line)s,
            rows_loaded = rows_loaded + %(loaded)s, rows_refused = rows_refused + %(refused)s,
            updated_at = now()
        WHERE id = %(id)s AND checkpoint_offset = %(expected)s AND status = 'running'
        RETURNING checkpoint_offset, checkpoint_line, rows_loaded, rows_refused, cancel_requested
        """,
        {"offset": offset, "line": line, "loaded": loaded, "refused": refused,
         "id": job_id, "expected": expected},
    )
    row = cursor.fetchone()
    if row is None:
        raise CheckpointMoved(f"job {job_id}: checkpoint moved away from byte {expected}")
    return Checkpoint(*row)


def save_refused(
    cursor: Any, job_id: uuid.UUID, refused: Sequence[tuple[Record, list[Problem]]]
) -> None:
    if refused:
        execute_values(
            cursor,
            'INSERT INTO refused_rows (job_id, line, "column", code, message, raw, errors) '
            "VALUES %s",
            [refused_row(job_id, record, problems) for record, problems in refused],
        )


def refused_row(job_id: uuid.UUID, record: Record, problems: list[Problem]) -> tuple[Any, ...]:
    first = problems[0]
    message = "; ".join(f"{p.column}: {p.message}" if p.column else p.message for p in problems)
    # PostgreSQL text cannot hold NUL; everything else is kept exactly as it was.
    raw = record.raw.replace("\x00", "\ufffd")
    return (str(job_id), record.line, first.column, first.code, message, raw,
            json.dumps([problem.as_dict() for problem in problems]))
