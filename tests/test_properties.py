"""Property: whatever table of values is written to CSV, in whatever dialect and encoding,
what lands in PostgreSQL equals what was written."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Database
from tests.inprocess import load

DDL = "(id int PRIMARY KEY, t text, n bigint, b boolean, d date, x numeric(12, 3))"
HEADER = ["id", "t", "n", "b", "d", "x"]

# Text a person would type: no NUL, no other control characters but tab and line ends.
ANY_TEXT = st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t\n\r")
# For cp1252 files: letters whose bytes can never pass for UTF-8. A soup of letters is no
# language a detector could recognise, so the test names the encoding (detection is tested
# on text people write, in tests/test_encodings.py).
CP1252_TEXT = st.sampled_from(
    [chr(c) for c in range(0x20, 0x7F)] + [chr(c) for c in range(0xC0, 0x100)] + ["\n", "\t"]
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], str, str, str]:
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    alphabet = CP1252_TEXT if encoding == "cp1252" else ANY_TEXT
    row = st.tuples(
        st.none() | st.text(alphabet, min_size=1, max_size=30),
        st.none() | st.integers(-(2**63), 2**63 - 1),
        st.none() | st.booleans(),
        st.none() | st.dates(date(1900, 1, 1), date(2100, 12, 31)),
        st.none()
        | st.decimals(
            min_value=-(10**9) + 1,
            max_value=10**9 - 1,
            places=3,
            allow_nan=False,
            allow_infinity=False,
        ),
    )
    rows = draw(st.lists(row, min_size=1, max_size=40))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return [(i, *values) for i, values in enumerate(rows, 1)], delimiter, newline, encoding


def written(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(rows: list[tuple[Any, ...]], delimiter: str, newline: str, encoding: str) -> bytes:
    out = io.StringIO()
    # Python's writer quotes a line end only if it is part of its own line terminator;
    # spreadsheets quote any field holding one, so the test does too.
    breaks = any(isinstance(v, str) and ("\r" in v or "\n" in v) for row in rows for v in row)
    quoting: Literal[0, 1] = csv.QUOTE_ALL if breaks else csv.QUOTE_MINIMAL
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(HEADER)
    writer.writerows([[written(value) for value in row] for row in rows])
    return out.getvalue().encode(encoding)


@pytest.fixture(scope="module")
def target(db: Database) -> Any:
    name = "importtest.property_rows"
    db.execute(f"DROP TABLE IF EXISTS {name}")
    db.execute(f"CREATE TABLE {name} {DDL}")
    yield name
    db.execute(f"DROP TABLE IF EXISTS {name}")


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tables())
def test_what_lands_is_what_was_written(
    db: Database,
    target: str,
    generated: tuple[list[tuple[Any, ...]], str, str, str],
) -> None:
    rows, delimiter, newline, encoding = generated
    db.execute(f"TRUNCATE {target}")

    content = to_csv(rows, delimiter, newline, encoding)
    job = (
        load(content, target, encoding="cp1252") if encoding == "cp1252" else load(content, target)
    )

    assert (job.status, job.rows_refused, job.rows_loaded) == ("completed", 0, len(rows))
    assert job.delimiter == delimiter
    landed = db.rows(f"SELECT id, t, n, b, d, x FROM {target} ORDER BY id")
    assert landed == [
        (i, t, n, b, d, None if x is None else Decimal(x)) for i, t, n, b, d, x in rows
    ]
