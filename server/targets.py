"""Target tables, read from PostgreSQL itself: the table is the schema.

A target must be on the operator's allow-list (`IMPORT_TARGETS`); a table that is not
allowed is never reflected, let alone written to, whatever the request says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text


class UnknownTarget(LookupError):
    """The target is not an allowed, existing table."""


@dataclass(frozen=True)
class InputFunction:
    """How PostgreSQL reads a column's text: its type's input function, called as COPY
    calls it (with the type's I/O parameter and the column's type modifier)."""

    function: int  # pg_proc oid
    io_param: int
    typmod: int
    args: int  # 1 or 3


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the base type's name in pg_type: int4, numeric, varchar, timestamptz, ...
    nullable: bool
    has_default: bool
    length: int | None = None  # varchar(n), char(n)
    precision: int | None = None  # numeric(p, s)
    scale: int | None = None
    labels: tuple[str, ...] = ()  # enum values
    checked: bool = False  # a domain with CHECK constraints of its own
    reader: InputFunction | None = None

    @property
    def required(self) -> bool:
        return not self.nullable and not self.has_default


@dataclass(frozen=True)
class Target:
    schema: str
    table: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Unique keys declared NULLS NOT DISTINCT (PostgreSQL 15+): there, NULL matches NULL.
    shared_nulls: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    def nulls_distinct(self, columns: Sequence[str]) -> bool:
        """Whether NULLs never match in the unique key on these columns (the default)."""
        return not any(
            tuple(key) == tuple(columns) and name in self.shared_nulls
            for name, key in self.unique_keys.items()
        )

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


# PostgreSQL cuts a longer name to this many bytes, which could then name another table.
MAX_NAME_BYTES = 63


def split_name(name: str) -> tuple[str, str]:
    """`table` is `public.table`; `schema.table` stays as it is."""
    parts = name.strip().split(".")
    if len(parts) == 1:
        parts = ["public", parts[0]]
    if len(parts) != 2 or not all(_is_name(part) for part in parts):
        raise UnknownTarget(f"{name!r} is not a table name (use table or schema.table)")
    return parts[0], parts[1]


def _is_name(part: str) -> bool:
    return 0 < len(part.encode(errors="replace")) <= MAX_NAME_BYTES and "\x00" not in part


def is_allowed(name: str, allow_list: list[str]) -> bool:
    schema, table = split_name(name)
    for entry in allow_list:
        allowed_schema, allowed_table = split_name(entry)
        if allowed_schema == schema and allowed_table in ("*", table):
            return True
    return False


def allowed_tables(connection: Connection, allow_list: list[str]) -> list[str]:
    """The tables the allow-list names, a `schema.*` entry read as the tables it holds."""
    names = []
    for entry in allow_list:
        schema, table = split_name(entry)
        if table != "*":
            names.append(f"{schema}.{table}")
            continue
        rows = connection.execute(_TABLES, {"schema": schema})
        names += [f"{schema}.{row.tablename}" for row in rows]
    return names


def load_target(connection: Connection, name: str, allow_list: list[str]) -> Target:
    """Reflect an allowed table, or raise UnknownTarget naming it."""
    if not is_allowed(name, allow_list):
        raise UnknownTarget(f"{name!r} is not a table that imports are allowed into")
    schema, table = split_name(name)
    oid = connection.execute(_RELATION, {"schema": schema, "table": table}).scalar()
    if oid is None:
        raise UnknownTarget(f"{name!r} is not a table that imports are allowed into")
    columns = tuple(_column(row) for row in connection.execute(_COLUMNS, {"oid": oid}))
    rows = connection.execute(_KEYS, {"oid": oid}).all()
    primary = next((tuple(row.columns) for row in rows if row.type == "p"), ())
    unique = {row.name: tuple(row.columns) for row in rows}
    shared = frozenset(row.name for row in rows if row.nulls_not_distinct)
    return Target(schema, table, columns, primary, unique, shared)


def _column(row: object) -> Column:
    typmod: int = row.typmod  # type: ignore[attr-defined]
    base: str = row.base  # type: ignore[attr-defined]
    length = typmod - 4 if base in ("varchar", "bpchar") and typmod > 4 else None
    precision = scale = None
    if base == "numeric" and typmod > 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    return Column(
        name=row.name,  # type: ignore[attr-defined]
        type=base,
        nullable=not row.notnull,  # type: ignore[attr-defined]
        has_default=bool(row.hasdefault),  # type: ignore[attr-defined]
        length=length,
        precision=precision,
        scale=scale,
        labels=tuple(row.labels or ()),  # type: ignore[attr-defined]
        checked=bool(row.checked),  # type: ignore[attr-defined]
        reader=InputFunction(
            row.input_function,  # type: ignore[attr-defined]
            row.io_param,  # type: ignore[attr-defined]
            row.atttypmod,  # type: ignore[attr-defined]
            row.input_args,  # type: ignore[attr-defined]
        ),
    )


_TABLES = text("SELECT tablename FROM pg_tables WHERE schemaname = :schema ORDER BY tablename")

_RELATION = text(
    """
    SELECT c.oid FROM pg_class c
    WHERE c.oid = to_regclass(format('%I.%I', :schema, :table))
      AND c.relkind IN ('r', 'p')
    """
)

# Domains are read as their base type; generated columns cannot be written, so they
# are not offered as import columns at all.
_COLUMNS = text(
    """
    SELECT a.attname AS name,
           CASE WHEN t.typtype = 'd' THEN bt.typname ELSE t.typname END AS base,
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
           a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) AS notnull,
           a.atthasdef OR a.attidentity <> '' AS hasdefault,
           CASE WHEN t.typtype = 'e' THEN ARRAY(
               SELECT e.enumlabel FROM pg_enum e
               WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END AS labels,
           t.typtype = 'd' AND EXISTS (
               SELECT 1 FROM pg_constraint k WHERE k.contypid = t.oid) AS checked,
           t.typinput::oid::bigint AS input_function,
           (CASE WHEN t.typelem <> 0 THEN t.typelem ELSE t.oid END)::bigint AS io_param,
           a.atttypmod,
           (SELECT p.pronargs FROM pg_proc p WHERE p.oid = t.typinput) AS input_args
    FROM pg_attribute a
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
    WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    ORDER BY a.attnum
    """
)

_KEYS = text(
    """
    SELECT c.conname AS name, c.contype AS type,
           ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num
                 ORDER BY k.ord) AS columns,
           -- indnullsnotdistinct exists from PostgreSQL 15 on; before, NULLs are distinct
           coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false)
               AS nulls_not_distinct
    FROM pg_constraint c
    LEFT JOIN pg_index i ON i.indexrelid = c.conindid
    WHERE c.conrelid = :oid AND c.contype IN ('p', 'u')
    """
)
