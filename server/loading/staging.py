"""The staging table of a job, and COPY into it.

Staged rows are invisible to readers of the target until the job publishes them, so a
failed or cancelled import leaves the target untouched. The table is UNLOGGED (no WAL):
its content can always be rebuilt from the file, and the checkpoint commits with it.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg2
from psycopg2 import sql

from server.csvfile.convert import Problem
from server.csvfile.reader import Record
from server.targets import Target

SCHEMA = "import_staging"
LINE, OFFSET = "_line", "_offset"
_CONTEXT_COLUMN = re.compile(r"column (\w+):")


def table_of(job_id: uuid.UUID) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(f"job_{job_id.hex}"))


def target_of(target: Target) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(target.schema), sql.Identifier(target.table))


def column_list(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(column) for column in columns)


def create(cursor: Any, job_id: uuid.UUID, target: Target, columns: Sequence[str]) -> None:
    """The target's columns with their types, and where each row came from in the file."""
    cursor.execute(
        sql.SQL("CREATE UNLOGGED TABLE IF NOT EXISTS {} AS SELECT {}, NULL::bigint AS {}, "
                "NULL::bigint AS {} FROM {} WITH NO DATA").format(
            table_of(job_id), column_list(columns), sql.Identifier(LINE),
            sql.Identifier(OFFSET), target_of(target))
    )


def drop(cursor: Any, job_id: uuid.UUID) -> None:
    cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_of(job_id)))


def copy_rows(
    cursor: Any, job_id: uuid.UUID, columns: Sequence[str], lines: list[str],
    records: list[Record],
) -> list[tuple[Record, list[Problem]]]:
    """COPY the lines; a line PostgreSQL refuses becomes a refused row, found by halving."""
    statement = sql.SQL("COPY {} ({}, {}, {}) FROM STDIN").format(
        table_of(job_id), column_list(columns), sql.Identifier(LINE), sql.Identifier(OFFSET))
    return _copy_or_split(cursor, statement, lines, records)


def _copy_or_split(
    cursor: Any, statement: sql.Composed, lines: list[str], records: list[Record]
) -> list[tuple[Record, list[Problem]]]:
    if not lines:
        return []
    cursor.execute("SAVEPOINT copy_rows")
    try:
        cursor.copy_expert(statement, io.StringIO("".join(lines)))
    except (psycopg2.DataError, psycopg2.IntegrityError) as error:
        cursor.execute("ROLLBACK TO SAVEPOINT copy_rows")
        if len(lines) == 1:
            return [(records[0], [database_problem(error)])]
        half = len(lines) // 2
        return (_copy_or_split(cursor, statement, lines[:half], records[:half])
                + _copy_or_split(cursor, statement, lines[half:], records[half:]))
    cursor.execute("RELEASE SAVEPOINT copy_rows")
    return []


_CODES = {"23505": "duplicate_key", "23503": "foreign_key", "23514": "check_violation",
          "23502": "not_null", "23P01": "exclusion_violation"}
_KEY_COLUMNS = re.compile(r"Key \(([^)]*)\)")


def database_problem(error: psycopg2.Error) -> Problem:
    diag = error.diag
    message = diag.message_primary or str(error).strip()
    if diag.message_detail:
        message = f"{message}: {diag.message_detail}"
    column = diag.column_name
    if column is None:
        found = (_CONTEXT_COLUMN.search(diag.context or "")
                 or _KEY_COLUMNS.search(diag.message_detail or ""))
        column = found.group(1) if found else None
    return Problem(column, _CODES.get(error.pgcode or "", "rejected_by_database"), message)
