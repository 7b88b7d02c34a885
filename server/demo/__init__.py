"""The demo: a `customers` table and a file to import into it, so that a fresh local install
has something to try (`make run` creates the table; production never does).

The table's definition is written here once; the tests make their customer tables from it.
"""

from __future__ import annotations

from pathlib import Path

from psycopg2 import sql

SAMPLE = Path(__file__).resolve().parent / "customers.csv"
TABLE = "public.customers"

# The column list of the demo table, as CREATE TABLE takes it.
COLUMNS_DDL = """(
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    name        text,
    signup_date date,
    balance     numeric(12, 2),
    country     char(2),
    active      boolean NOT NULL DEFAULT true,
    notes       text
)"""


def create_table(cursor: object, schema: str = "public", table: str = "customers") -> None:
    """The demo table, unless a table of that name is already there."""
    statement = sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ").format(
        sql.Identifier(schema), sql.Identifier(table)
    ) + sql.SQL(COLUMNS_DDL)
    cursor.execute(statement)  # type: ignore[attr-defined]
