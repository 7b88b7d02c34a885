"""Staged rows into the target, in the job's final transaction.

`append` inserts; `upsert` inserts new keys and updates rows whose values changed (the
last line of the file wins for a key given twice). A row that only the database can refuse
(a key already taken, a foreign key, a check) is found by halving the failing range of
lines inside savepoints, and becomes a refused row; every other row lands.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from psycopg2 import sql

from server.csvfile.convert import Problem
from server.csvfile.reader import Record
from server.loading import staging
from server.targets import Target

Reread = Callable[[int, int], Record]


@dataclass(frozen=True)
class Publish:
    job_id: uuid.UUID
    target: Target
    columns: Sequence[str]
    mode: str
    key_columns: Sequence[str]


@dataclass
class Published:
    rows: int = 0
    refused: list[tuple[Record, list[Problem]]] = field(default_factory=list)


def publish(cursor: Any, plan: Publish, reread: Reread, end_line: int) -> Published:
    """Every staged row, from the lines before `end_line` (where the checkpoint stands)."""
    result = Published()
    _publish_range(cursor, plan, insert_statement(plan), 0, end_line, reread, result)
    return result


def _publish_range(
    cursor: Any,
    plan: Publish,
    statement: sql.Composed,
    low: int,
    high: int,
    reread: Reread,
    result: Published,
) -> None:
    cursor.execute("SAVEPOINT publish_range")
    try:
        cursor.execute(statement, {"low": low, "high": high})
    except (psycopg2.IntegrityError, psycopg2.DataError) as error:
        cursor.execute("ROLLBACK TO SAVEPOINT publish_range")
        _split(cursor, plan, statement, low, high, reread, result, error)
        return
    result.rows += cursor.rowcount
    cursor.execute("RELEASE SAVEPOINT publish_range")


def _split(
    cursor: Any,
    plan: Publish,
    statement: sql.Composed,
    low: int,
    high: int,
    reread: Reread,
    result: Published,
    error: psycopg2.Error,
) -> None:
    cursor.execute(
        sql.SQL(
            "SELECT {0}, {1} FROM {2} WHERE {0} >= %s AND {0} < %s ORDER BY {0} LIMIT 2"
        ).format(
            sql.Identifier(staging.LINE),
            sql.Identifier(staging.OFFSET),
            staging.table_of(plan.job_id),
        ),
        (low, high),
    )
    rows = cursor.fetchall()
    if len(rows) == 1:
        line, offset = rows[0]
        result.refused.append((reread(offset, line), [staging.database_problem(error)]))
        return
    middle = (low + high) // 2
    _publish_range(cursor, plan, statement, low, middle, reread, result)
    _publish_range(cursor, plan, statement, middle, high, reread, result)


def insert_statement(plan: Publish) -> sql.Composed:
    line = sql.Identifier(staging.LINE)
    columns = staging.column_list(plan.columns)
    where = sql.SQL("WHERE {0} >= %(low)s AND {0} < %(high)s").format(line)
    source = staging.table_of(plan.job_id)
    target = staging.target_of(plan.target)
    if plan.mode == "append":
        # No ORDER BY: sorting millions of staged rows costs more than the insert itself,
        # and a table has no order; which of two equal keys is refused is still decided by
        # line, since a failing range is split in halves, the first half first.
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} {}").format(
            target, columns, columns, source, where
        )
    keys = staging.column_list(plan.key_columns)
    return sql.SQL(
        "INSERT INTO {target} AS t ({columns}) SELECT DISTINCT ON ({keys}) {columns} "
        "FROM {source} {where} ORDER BY {keys}, {line} DESC ON CONFLICT ({keys}) {action}"
    ).format(
        target=target,
        columns=columns,
        keys=keys,
        source=source,
        where=where,
        line=line,
        action=_on_conflict(plan),
    )


def _on_conflict(plan: Publish) -> sql.Composable:
    others = [column for column in plan.columns if column not in plan.key_columns]
    if not others:
        return sql.SQL("DO NOTHING")
    names = staging.column_list(others)
    excluded = sql.SQL(", ").join(
        sql.SQL("EXCLUDED.{}").format(sql.Identifier(column)) for column in others
    )
    current = sql.SQL(", ").join(
        sql.SQL("t.{}").format(sql.Identifier(column)) for column in others
    )
    # Rows whose values did not change are not rewritten: a second run changes nothing.
    return sql.SQL("DO UPDATE SET ({}) = ROW({}) WHERE ROW({}) IS DISTINCT FROM ROW({})").format(
        names, excluded, current, excluded
    )
