"""The staging table of a job, and COPY into it.

Staged rows are invisible to readers of the target until the job publishes them, so a
failed or cancelled import leaves the target untouched. The table is UNLOGGED (no WAL):
its content can always be rebuilt from the file, and the checkpoint commits with it.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import sql

from server.csvfile.convert import Problem, RowConverter
from server.csvfile.detect import Layout
from server.csvfile.formats import RUN_THOUSANDS, Formats, rewritten_in_sql
from server.csvfile.pattern import copy_null, encoding_for_copy, with_positions
from server.csvfile.reader import Record
from server.loading import judge
from server.loading.accounting import expect_written
from server.loading.batches import Batch, Run, careful_batch
from server.targets import Target

SCHEMA = "import_staging"
MAX_COLUMNS = 1600
# COPY sends what it reads from the source in messages of this size.
_COPY_BUFFER = 1 << 20
# Where each staged row came from in the file: its line, byte offset and length in bytes
# (so that a row refused at publish is read back from the file as it was written).
LINE, OFFSET, LENGTH = "_line", "_offset", "_length"
POSITIONS = (LINE, OFFSET, LENGTH)
_PREFIX = "job_"
_CONTEXT_COLUMN = re.compile(r"column (\w+):")


def table_name(job_id: uuid.UUID) -> str:
    """The one way a job's staging table is named, in schema `SCHEMA`."""
    return f"{_PREFIX}{job_id.hex}"


def job_of(name: str) -> uuid.UUID | None:
    """The job whose staging table this is; None for a table that is no job's."""
    if not name.startswith(_PREFIX):
        return None
    try:
        return uuid.UUID(hex=name.removeprefix(_PREFIX))
    except ValueError:
        return None


def table_of(job_id: uuid.UUID) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table_name(job_id)))


def exists(cursor: Any, job_id: uuid.UUID) -> bool:
    cursor.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
        (SCHEMA, table_name(job_id)),
    )
    return cursor.fetchone() is not None


def staged_jobs(cursor: Any) -> set[uuid.UUID]:
    """Every job that has a staging table."""
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (SCHEMA,))
    return {job for (name,) in cursor.fetchall() if (job := job_of(name)) is not None}


def target_of(target: Target) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(target.schema), sql.Identifier(target.table))


def column_list(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(column) for column in columns)


def takes_runs(columns: Sequence[str | None], rewritten: Collection[str] = ()) -> bool:
    """Whether the staging table can have a column for every field of the file (and the
    positions, and two more for each number it rewrites): PostgreSQL allows 1600 columns.
    A wider file goes the careful way."""
    return len(columns) + 3 + 2 * len(rewritten) <= MAX_COLUMNS


def rewritten_numbers(target: Target, columns: Sequence[str | None], formats: Formats) -> set[str]:
    """The columns whose numbers the runs send as the file writes them (`1.234,56`):
    PostgreSQL rewrites them as it stores them (see `_rewrite_numbers`)."""
    return {
        name
        for name in columns
        if name is not None and rewritten_in_sql(target.column(name), formats)
    }


def _run_column(index: int) -> str:
    return f"_run_{index}"


def _careful_column(index: int) -> str:
    return f"_careful_{index}"


def file_columns(columns: Sequence[str | None]) -> list[str]:
    """One staging column per field of the file, in its order: a field that no column
    takes still needs a place to land when whole lines go to COPY as they are."""
    return [f"_skip_{index}" if name is None else name for index, name in enumerate(columns)]


def create(
    cursor: Any,
    job_id: uuid.UUID,
    target: Target,
    columns: Sequence[str | None],
    rewritten: Collection[str] = (),
    formats: Formats | None = None,
) -> None:
    """The target's columns with their types, and where each row came from in the file."""
    if exists(cursor, job_id):
        return
    if not takes_runs(columns, rewritten):
        columns = [name for name in columns if name is not None]
    fields = [
        sql.Identifier(name)
        if name is not None
        else sql.SQL("NULL::text AS {}").format(sql.Identifier(skip))
        for name, skip in zip(columns, file_columns(columns), strict=True)
    ]
    cursor.execute(
        sql.SQL(
            "CREATE UNLOGGED TABLE IF NOT EXISTS {} AS SELECT {}, NULL::bigint AS {}, "
            "NULL::bigint AS {}, NULL::integer AS {} FROM {} WITH NO DATA"
        ).format(
            table_of(job_id),
            sql.SQL(", ").join(fields),
            sql.Identifier(LINE),
            sql.Identifier(OFFSET),
            sql.Identifier(LENGTH),
            target_of(target),
        )
    )
    for index, name in enumerate(columns):
        if name is not None and name in rewritten and formats is not None:
            _rewrite_numbers(cursor, job_id, index, name, formats)


def _rewrite_numbers(
    cursor: Any, job_id: uuid.UUID, index: int, name: str, formats: Formats
) -> None:
    """A number column in the file's own way, in three: the runs' text as written
    (`_run_N`), the careful rows' values (`_careful_N`, converted in Python), and the
    column itself, generated from whichever is set: PostgreSQL drops the thousands
    separators and reads the decimal mark as it stores each row, in C."""
    table = table_of(job_id)
    kind = _type_of(cursor, table, name)
    cursor.execute(
        sql.SQL(
            "ALTER TABLE {table} RENAME COLUMN {name} TO {careful}; "
            "ALTER TABLE {table} ADD COLUMN {run} text, ADD COLUMN {name} {kind} GENERATED "
            "ALWAYS AS (COALESCE({careful}, {number})) STORED"
        ).format(
            table=table,
            name=sql.Identifier(name),
            careful=sql.Identifier(_careful_column(index)),
            run=sql.Identifier(_run_column(index)),
            kind=sql.SQL(kind),
            number=_read_number(sql.Identifier(_run_column(index)), kind, formats),
        )
    )


def _type_of(cursor: Any, table: sql.Composed, name: str) -> str:
    cursor.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attname = %s",
        (table.as_string(cursor), name),
    )
    kind: str = cursor.fetchone()[0]
    return kind


def _read_number(written: sql.Composable, kind: str, formats: Formats) -> sql.Composed:
    """PostgreSQL's reading of a number the fast path proved to be in the file's own way:
    the thousands separators dropped, the decimal mark made a point."""
    mark, separator = formats.decimal, RUN_THOUSANDS[str(formats.decimal)]
    return sql.SQL("translate({}, {}, '.')::{}").format(
        written, sql.Literal(f"{mark}{separator}"), sql.SQL(kind)
    )


# Where the runs of a job loaded in one transaction go first when they hold numbers in the
# file's own way: a temporary table (local buffers, no WAL), emptied after every batch.
# (Named in pg_temp, so that no table of the same name elsewhere on the path is meant.)
_RUNS = sql.SQL("pg_temp.{}").format(sql.Identifier("import_runs"))


def create_runs(
    cursor: Any,
    target: Target,
    columns: Sequence[str],
    rewritten: Collection[str],
    formats: Formats,
) -> sql.Composed:
    """For a job loaded straight into the target whose numbers are in the file's own way:
    the temporary table its runs are copied to (those numbers as text), dropped with the
    transaction; and the statement that moves a batch's runs on into the target, numbers
    rewritten by PostgreSQL as it reads them."""
    fields = [
        sql.SQL("{0}::text AS {0}" if name in rewritten else "{0}").format(sql.Identifier(name))
        for name in columns
    ]
    into = target_of(target)
    cursor.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
        ).format(_RUNS, sql.SQL(", ").join(fields), into)
    )
    values = [
        _read_number(sql.Identifier(name), _type_of(cursor, into, name), formats)
        if name in rewritten
        else sql.Identifier(name)
        for name in columns
    ]
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
        into, column_list(columns), sql.SQL(", ").join(values), _RUNS
    )


def drop(cursor: Any, job_id: uuid.UUID) -> None:
    cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_of(job_id)))


@dataclass(frozen=True)
class Stage:
    """Where a job's batches go, and how. `into` is the job's staging table, or the target
    itself for a job loaded in one transaction (then rows carry no positions, and every
    field of the file has a column). `columns` are the file's fields in order, None for a
    field no column takes. The converter redoes a run the careful way if COPY refuses it."""

    job_id: uuid.UUID
    into: sql.Composed
    columns: Sequence[str | None]
    layout: Layout
    converter: RowConverter
    # Number columns whose runs go to COPY in the file's own way (see `_rewrite_numbers`).
    rewritten: frozenset[str] = frozenset()
    # For a job loaded in one transaction whose runs hold such numbers: the statement that
    # moves them on from the temporary table they are copied to (see `create_runs`).
    runs_onward: sql.Composed | None = None

    @property
    def loaded(self) -> list[str]:
        return [name for name in self.columns if name is not None]

    def loaded_as(self, run: bool) -> list[str]:
        """The staging columns the loaded fields go to: a rewritten number's own for runs
        or careful rows."""
        written = _run_column if run else _careful_column
        return [
            written(index) if self._renamed(name) else name
            for index, name in enumerate(self.columns)
            if name is not None
        ]

    def _renamed(self, name: str | None) -> bool:
        """Whether this field lands in a staging column of its own, by the way it came."""
        return name in self.rewritten and self.runs_onward is None

    def prepare(self, batch: Batch) -> Batch:
        """The runs' bytes for COPY, made while the batch is read: the copier thread then
        only sends them (it is the one PostgreSQL waits for)."""
        batch.run_data = b"".join(map(self.copy_data, batch.runs))
        return batch

    def copy_data(self, run: Run) -> bytes:
        if not self.converter.positions:
            return run.raw
        return with_positions(
            run.raw, run.first_line, run.start_offset, self.layout.terminator, self.layout.delimiter
        )

    def copy_columns(self, run: bool) -> sql.Composable:
        if run:
            names = [
                _run_column(index) if self._renamed(name) else name
                for index, name in enumerate(file_columns(self.columns))
            ]
        else:
            names = self.loaded_as(run=False)
        if self.converter.positions:
            names = [*names, LINE, OFFSET, LENGTH]
        return column_list(names)


def stage(
    cursor: Any,
    plan: Stage,
    batch: Batch,
    careful: bool = True,
) -> list[tuple[Record, list[Problem]]]:
    """COPY the batch; what PostgreSQL refused comes back as refused rows. Without
    `careful`, a refusal is an error instead (no savepoints: a long transaction with
    hundreds of them slows every later statement down). PostgreSQL's count of the rows it
    copied must be the batch's records less those refused."""
    refused, lines, records = list(batch.refused), list(batch.lines), list(batch.records)
    pending = list(batch.pending)
    copied = copy_runs(cursor, plan, batch, careful) if batch.runs else 0
    batch.careful = batch.rows - (copied or 0)
    if copied is None:
        copied = 0
        for run in batch.runs:
            redone = careful_batch(run, plan.layout, plan.converter)
            refused += redone.refused
            lines += redone.lines
            records += redone.records
            pending += redone.pending
    settled = judge.settle(cursor, plan.converter, [question for _, question in pending])
    for (record, _), result in zip(pending, settled, strict=True):
        if isinstance(result, str):
            lines.append(result)
            records.append(record)
        else:
            refused.append((record, result))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(plan.into, plan.copy_columns(run=False))
    if not careful:
        if lines:
            cursor.copy_expert(statement, io.StringIO("".join(lines)))
            copied += cursor.rowcount
    else:
        more, count = _copy_or_split(cursor, statement, lines, records)
        refused += more
        copied += count
    expect_written("a batch", batch.rows - len(refused), copied)
    return refused


def copy_runs(cursor: Any, plan: Stage, batch: Batch, careful: bool) -> int | None:
    """COPY runs of lines as they are in the file, in one statement: how many rows; None if
    PostgreSQL refused any of them (a key already taken, say), and then nothing of them is
    written."""
    # The null marker, quoted or not, is NULL (FORCE_NULL), as on the careful path.
    statement = sql.SQL(
        "COPY {} ({}) FROM STDIN WITH (FORMAT csv, DELIMITER {}, ENCODING {}, NULL {}, "
        "FORCE_NULL ({}))"
    ).format(
        plan.into if plan.runs_onward is None else _RUNS,
        plan.copy_columns(run=True),
        sql.Literal(plan.layout.delimiter),
        sql.Literal(encoding_for_copy(plan.layout.encoding)),
        sql.Literal(copy_null(plan.converter.nulls, plan.layout.delimiter) or ""),
        column_list(plan.loaded_as(run=True)),
    )
    data = io.BytesIO(batch.run_data or b"".join(map(plan.copy_data, batch.runs)))
    if not careful:
        return _send_runs(cursor, plan, statement, data)
    cursor.execute("SAVEPOINT copy_runs")
    try:
        copied = _send_runs(cursor, plan, statement, data)
    except (psycopg2.DataError, psycopg2.IntegrityError):
        cursor.execute("ROLLBACK TO SAVEPOINT copy_runs")
        return None
    cursor.execute("RELEASE SAVEPOINT copy_runs")
    return copied


def _send_runs(cursor: Any, plan: Stage, statement: sql.Composed, data: io.BytesIO) -> int:
    cursor.copy_expert(statement, data, size=_COPY_BUFFER)
    copied: int = cursor.rowcount
    if plan.runs_onward is not None:
        cursor.execute(plan.runs_onward)
        expect_written("a batch's runs", copied, cursor.rowcount)
        cursor.execute(sql.SQL("TRUNCATE {}").format(_RUNS))
    return copied


Refusals = list[tuple[Record, list[Problem]]]


def _copy_or_split(
    cursor: Any, statement: sql.Composed, lines: list[str], records: list[Record]
) -> tuple[Refusals, int]:
    """COPY the lines; those PostgreSQL refuses, found by halving, come back refused. The
    rows refused, and how many rows were copied."""
    if not lines:
        return [], 0
    cursor.execute("SAVEPOINT copy_rows")
    try:
        cursor.copy_expert(statement, io.StringIO("".join(lines)))
    except (psycopg2.DataError, psycopg2.IntegrityError) as error:
        cursor.execute("ROLLBACK TO SAVEPOINT copy_rows")
        if len(lines) == 1:
            return [(records[0], [database_problem(error)])], 0
        half = len(lines) // 2
        first, first_copied = _copy_or_split(cursor, statement, lines[:half], records[:half])
        second, second_copied = _copy_or_split(cursor, statement, lines[half:], records[half:])
        return first + second, first_copied + second_copied
    copied: int = cursor.rowcount
    cursor.execute("RELEASE SAVEPOINT copy_rows")
    return [], copied


_CODES = {
    "23505": "duplicate_key",
    "23503": "foreign_key",
    "23514": "check_violation",
    "23502": "not_null",
    "23P01": "exclusion_violation",
}
_KEY_COLUMNS = re.compile(r"Key \(([^)]*)\)")


def database_problem(error: psycopg2.Error) -> Problem:
    diag = error.diag
    message = diag.message_primary or str(error).strip()
    if diag.message_detail:
        message = f"{message}: {diag.message_detail}"
    column = diag.column_name
    if column is None:
        found = _CONTEXT_COLUMN.search(diag.context or "") or _KEY_COLUMNS.search(
            diag.message_detail or ""
        )
        column = found.group(1) if found else None
    return Problem(column, _CODES.get(error.pgcode or "", "rejected_by_database"), message)
