"""Staged rows into the target: one INSERT in the job's final transaction writes them all;
what the database refuses is then found as sets, and the insert runs again without it.

The steps that find it each commit, and a continuation never redoes one (a step finds
nothing left to do the second time):

- upsert: a row whose key a later line of the file gives again is superseded (the last line
  wins): it leaves the staging table and is counted. The insert fails on such keys (an
  update cannot touch a row twice), so a file without them never pays for the search;
- append: a row whose key (of any unique key of the target whose columns the file fills) is
  already in the table, or was given at an earlier line of the file, is refused: it leaves
  the staging table as a refused row. These run when the insert met a duplicate key (or
  the job's load in one transaction did, before the insert first tries).

The one `INSERT … SELECT` (upsert: `ON CONFLICT … DO UPDATE`) has a count of rows that must
be the count of staged rows left: every line of the file is loaded, refused or superseded.
Should PostgreSQL still refuse a row (a check, a foreign key, a unique index the steps do
not see), a probe finds it by halving line ranges over an index on the line, in a
transaction that is rolled back; the row is refused and the insert runs again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import sql

from server.csvfile.convert import Problem
from server.loading import staging
from server.targets import Target

LINE, OFFSET, LENGTH = (sql.Identifier(name) for name in staging.POSITIONS)


@dataclass(frozen=True)
class Publish:
    job_id: uuid.UUID
    target: Target
    columns: Sequence[str]  # the target's columns that the file fills
    mode: str
    key_columns: Sequence[str]
    nulls_distinct: bool = True  # of the upsert key: NULLs never match each other

    @property
    def staged(self) -> sql.Composed:
        return staging.table_of(self.job_id)


@dataclass(frozen=True)
class Refused:
    """A staged row PostgreSQL would refuse: where it is in the file, and why."""

    line: int
    offset: int
    length: int
    problem: Problem


def supersede(cursor: Any, plan: Publish) -> int:
    """Upsert: remove the rows whose key a later line gives again; how many there were."""
    keys = plan.key_columns
    same = _same(keys, "s", "d", plan.nulls_distinct)
    cursor.execute(
        sql.SQL(
            "DELETE FROM {staged} s USING (SELECT {keys}, max({line}) AS last FROM {staged} "
            "GROUP BY {keys} HAVING count(*) > 1) d WHERE {same} AND s.{line} < d.last"
        ).format(staged=plan.staged, keys=staging.column_list(keys), line=LINE, same=same)
    )
    removed: int = cursor.rowcount
    return removed


def taken(cursor: Any, plan: Publish) -> list[Refused]:
    """Append: remove and return the rows whose key (of any unique key of the target that
    the file fills) the table holds already: all of them, as a sequential insert would
    refuse them. One hash (or index) join per key."""
    found: list[Refused] = []
    for name, columns in _checkable_keys(plan):
        cursor.execute(
            sql.SQL("DELETE FROM {} s WHERE {} AND EXISTS (SELECT 1 FROM {} t WHERE {}) {}").format(
                plan.staged,
                _filled(columns),
                staging.target_of(plan.target),
                _same(columns, "t", "s", nulls_distinct=True),
                _returning(columns),
            )
        )
        found += _refused(cursor, name, columns, "already exists")
    return found


def repeated(cursor: Any, plan: Publish) -> list[Refused]:
    """Append: remove and return the rows whose key an earlier line of the file gives."""
    found: list[Refused] = []
    for name, columns in _checkable_keys(plan):
        cursor.execute(
            sql.SQL(
                "DELETE FROM {staged} s USING (SELECT {keys}, min({line}) AS first FROM {staged} "
                "GROUP BY {keys} HAVING count(*) > 1) d WHERE {filled} AND {same} "
                "AND s.{line} > d.first {returning}"
            ).format(
                staged=plan.staged,
                keys=staging.column_list(columns),
                line=LINE,
                filled=_filled(columns),
                same=_same(columns, "s", "d", nulls_distinct=True),
                returning=_returning(columns),
            )
        )
        found += _refused(cursor, name, columns, "is given again: an earlier line has it")
    return found


def _checkable_keys(plan: Publish) -> Iterator[tuple[str, Sequence[str]]]:
    for name, columns in plan.target.unique_keys.items():
        if columns and all(column in plan.columns for column in columns):
            yield name, columns


def _filled(columns: Sequence[str]) -> sql.Composed:
    """No NULL in the key: a key with a NULL matches nothing (NULLs are distinct)."""
    return sql.SQL(" AND ").join(
        sql.SQL("s.{} IS NOT NULL").format(sql.Identifier(column)) for column in columns
    )


def _returning(columns: Sequence[str]) -> sql.Composed:
    shown = sql.SQL("concat_ws(', ', {})").format(
        sql.SQL(", ").join(sql.SQL("s.{}::text").format(sql.Identifier(c)) for c in columns)
    )
    return sql.SQL("RETURNING s.{}, s.{}, s.{}, {}").format(LINE, OFFSET, LENGTH, shown)


def _refused(cursor: Any, name: str, columns: Sequence[str], why: str) -> list[Refused]:
    listed = ", ".join(columns)
    column = listed if len(columns) == 1 else None
    return [
        Refused(
            line,
            offset,
            length,
            Problem(
                column,
                "duplicate_key",
                f'duplicate key value violates unique constraint "{name}": '
                f"Key ({listed})=({key}) {why}",
            ),
        )
        for line, offset, length, key in cursor.fetchall()
    ]


def _same(columns: Sequence[str], left: str, right: str, nulls_distinct: bool) -> sql.Composed:
    equal = "{0}.{2} = {1}.{2}" if nulls_distinct else "{0}.{2} IS NOT DISTINCT FROM {1}.{2}"
    return sql.SQL(" AND ").join(
        sql.SQL(equal).format(sql.Identifier(left), sql.Identifier(right), sql.Identifier(c))
        for c in columns
    )


def insert_statement(plan: Publish, ranged: bool = False) -> sql.Composed:
    """Every staged row into the target (or those of a range of lines, for a probe)."""
    columns = staging.column_list(plan.columns)
    where = (
        sql.SQL("WHERE {0} >= %(low)s AND {0} < %(high)s").format(LINE) if ranged else sql.SQL("")
    )
    statement = sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {} {}").format(
        staging.target_of(plan.target), columns, columns, plan.staged, where
    )
    if plan.mode == "append":
        return statement
    keys = staging.column_list(plan.key_columns)
    return statement + sql.SQL(" ON CONFLICT ({}) DO UPDATE SET ").format(keys) + _updates(plan)


def _updates(plan: Publish) -> sql.Composable:
    """Every column the file fills, key included when nothing else is: each row of the file
    counts once, as an insert or an update, so that the insert's count can be checked."""
    others = [column for column in plan.columns if column not in plan.key_columns]
    names = others or list(plan.key_columns)
    return sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column)) for column in names
    )


def index_lines(cursor: Any, plan: Publish) -> None:
    """An index on the line: a probe reads ranges of lines, never the whole table again."""
    cursor.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{staging.table_name(plan.job_id)}_line"), plan.staged, LINE
        )
    )


def probe(cursor: Any, plan: Publish) -> list[Refused]:
    """The rows a sequential insert would refuse, found by halving line ranges inside
    savepoints. Runs in a transaction that the caller rolls back."""
    cursor.execute(sql.SQL("SELECT min({0}), max({0}) FROM {1}").format(LINE, plan.staged))
    low, high = cursor.fetchone()
    if low is None:
        return []
    found: list[Refused] = []
    _probe_range(cursor, plan, insert_statement(plan, ranged=True), low, high + 1, found)
    return found


def _probe_range(
    cursor: Any, plan: Publish, statement: sql.Composed, low: int, high: int, found: list[Refused]
) -> None:
    cursor.execute("SAVEPOINT probe")
    try:
        cursor.execute(statement, {"low": low, "high": high})
    except (psycopg2.IntegrityError, psycopg2.DataError) as error:
        cursor.execute("ROLLBACK TO SAVEPOINT probe")
        _split(cursor, plan, statement, low, high, found, error)
        return
    cursor.execute("RELEASE SAVEPOINT probe")


def _split(
    cursor: Any,
    plan: Publish,
    statement: sql.Composed,
    low: int,
    high: int,
    found: list[Refused],
    error: psycopg2.Error,
) -> None:
    cursor.execute(
        sql.SQL(
            "SELECT {0}, {1}, {2} FROM {3} WHERE {0} >= %s AND {0} < %s ORDER BY {0} LIMIT 2"
        ).format(LINE, OFFSET, LENGTH, plan.staged),
        (low, high),
    )
    rows = cursor.fetchall()
    if len(rows) == 1:
        line, offset, length = rows[0]
        found.append(Refused(line, offset, length, staging.database_problem(error)))
        return
    if not rows:
        return
    middle = (low + high) // 2
    _probe_range(cursor, plan, statement, low, middle, found)
    _probe_range(cursor, plan, statement, middle, high, found)


def remove(cursor: Any, plan: Publish, lines: Sequence[int]) -> int:
    """Take these lines out of the staging table: they are refused."""
    cursor.execute(
        sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(plan.staged, LINE), (list(lines),)
    )
    removed: int = cursor.rowcount
    return removed
