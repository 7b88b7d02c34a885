"""The end of a staged job: the one atomic insert, whose count is checked against the staged
rows; when it is refused, superseded and refused rows found as sets, each step committed on
its own, and the insert again.

A step that has run leaves nothing for itself to find again, so a continuation (after a
soft time limit, a crash) picks up where the last committed step left off. A cancel is
seen between steps, and during a statement (the API interrupts the job's session).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import psycopg2
import psycopg2.errors
from sqlalchemy import Connection

from server.csvfile.detect import Layout
from server.db import raw_cursor
from server.jobs import repository
from server.jobs.model import Job, JobOptions, RefusedRow
from server.loading import publish
from server.loading.accounting import check_budget, expect_written
from server.loading.publish import Publish, Refused

log = logging.getLogger(__name__)
# What the insert can be refused with: a row (a key, a check, a value), or an upsert's key
# given twice (an update cannot touch a row twice).
REFUSED_INSERT = (psycopg2.IntegrityError, psycopg2.DataError, psycopg2.errors.CardinalityViolation)


@dataclass
class FileLines:
    """A record's text as it is in the file, read back by its offset and length."""

    file: BinaryIO
    layout: Layout

    def raw(self, offset: int, length: int) -> str:
        self.file.seek(offset)
        text = self.file.read(length).decode(self.layout.encoding, "replace")
        for end in ("\r\n", "\n", "\r"):
            if text.endswith(end):
                return text[: -len(end)]
        return text


class Finisher:
    def __init__(
        self, connection: Connection, plan: Publish, options: JobOptions, lines: FileLines
    ) -> None:
        self.connection = connection
        self.plan = plan
        self.options = options
        self.lines = lines
        self.steps_done: set[str] = set()

    @property
    def cancelled(self) -> bool:
        with self.connection.begin():
            return repository.cancel_requested(self.connection, self.plan.job_id)

    def prepare(self, duplicates_expected: bool) -> bool:
        """The steps before the insert; False if the job was cancelled meanwhile. An
        append looks for duplicate keys first only if it expects some (its load in one
        transaction met one): otherwise the insert tries first, and a duplicate it meets
        sends it to `refuse_duplicates`. An upsert's insert tries first too: a key given
        twice makes it fail (it cannot update a row twice), and `refuse_after` supersedes."""
        if self.cancelled:
            return False
        if self.plan.mode == "append" and duplicates_expected:
            self.refuse_duplicates()
        return not self.cancelled

    def supersede(self) -> bool:
        """Upsert: the lines whose key a later line gives again leave (once); False when
        that has run."""
        return self._once(self._supersede)

    def refuse_duplicates(self) -> bool:
        """Append: refuse the rows a unique key of the target refuses, the keys the table
        holds first, those the file gives twice next (one step each, once each); False
        when both have run."""
        return self._once(self._taken) or self._once(self._repeated)

    def _once(self, step: Callable[[Any], tuple[list[Refused], int]]) -> bool:
        """Run and commit a step unless it has run; whether it ran."""
        if step.__name__ in self.steps_done:
            return False
        self.steps_done.add(step.__name__)
        self._commit_step(step)
        return True

    def _supersede(self, cursor: Any) -> tuple[list[Refused], int]:
        return [], publish.supersede(cursor, self.plan)

    def _taken(self, cursor: Any) -> tuple[list[Refused], int]:
        return publish.taken(cursor, self.plan), 0

    def _repeated(self, cursor: Any) -> tuple[list[Refused], int]:
        return publish.repeated(cursor, self.plan), 0

    def _commit_step(self, step: Callable[[Any], tuple[list[Refused], int]]) -> None:
        started = time.monotonic()
        with self.connection.begin():
            refused, superseded = step(raw_cursor(self.connection))
            self._record(refused, superseded)
        log.info(
            "job %s: %s in %.2f s",
            self.plan.job_id,
            step.__name__.strip("_"),
            time.monotonic() - started,
        )
        self._within_budget(final=False)

    def _record(self, refused: list[Refused], superseded: int = 0) -> None:
        rows = [self._refused_row(found) for found in refused]
        repository.save_refused(self.connection, self.plan.job_id, rows)
        repository.unstage(self.connection, self.plan.job_id, len(rows), superseded)
        if rows or superseded:
            log.info(
                "job %s: %s staged rows refused, %s superseded",
                self.plan.job_id,
                len(rows),
                superseded,
            )

    def _refused_row(self, found: Refused) -> RefusedRow:
        problem = found.problem
        raw = self.lines.raw(found.offset, found.length).replace("\x00", "\ufffd")
        return RefusedRow(
            found.line, problem.column, problem.code, problem.message, raw, (problem.as_dict(),)
        )

    def _within_budget(self, final: bool) -> Job:
        job = repository.get_job(self.connection, self.plan.job_id)
        self.connection.commit()
        assert job is not None
        check_budget(self.options, job.rows_loaded, job.rows_refused, final)
        return job

    def insert(self) -> tuple[int, Job]:
        """In the caller's transaction: every staged row left into the target. The count
        PostgreSQL reports must be the staged rows left, or nothing is written."""
        job = repository.get_job(self.connection, self.plan.job_id)
        assert job is not None
        check_budget(self.options, job.rows_loaded, job.rows_refused, final=True)
        cursor = raw_cursor(self.connection)
        cursor.execute(publish.insert_statement(self.plan))
        written: int = cursor.rowcount
        expect_written("the staged rows", job.rows_loaded, written)
        return written, job

    def refuse_after(self, error: psycopg2.Error) -> bool:
        """After the insert was refused: an upsert's repeated keys superseded first (once,
        whatever the error: a probe must not meet them), the duplicate keys of an append as
        a set if that was why (once), else a probe; False if nothing was found to refuse."""
        if self.plan.mode == "upsert" and self.supersede():
            return True
        unique = isinstance(error, psycopg2.errors.UniqueViolation)
        if self.plan.mode == "append" and unique and self.refuse_duplicates():
            return True
        return self.refuse_what_fails() > 0

    def refuse_what_fails(self) -> int:
        """After the insert failed: find the rows a sequential insert would refuse (in a
        transaction rolled back), then refuse them and take them out; how many."""
        with self.connection.begin():
            publish.index_lines(raw_cursor(self.connection), self.plan)
        transaction = self.connection.begin()
        try:
            found = publish.probe(raw_cursor(self.connection), self.plan)
        finally:
            transaction.rollback()
        with self.connection.begin():
            publish.remove(raw_cursor(self.connection), self.plan, [f.line for f in found])
            self._record(found)
        self._within_budget(final=False)
        return len(found)
