"""PostgreSQL is the judge: every value, held against PostgreSQL's own reading of it.

For every column type the loader knows, Hypothesis generates text: values written every way
people and programs write them, values at the edges of each type, and hostile ones (huge,
deep, out of range, odd white space, digits of other scripts, exotic spellings). For each:

- PostgreSQL's verdict: the column's input function, called as COPY calls it, in a session
  set as the workers' are;
- the converter's verdict: accept (the value goes to COPY as written), refuse, or ask;
- the fast path's: whether the row pattern would let the value through unchecked.

Where PostgreSQL refuses, we refuse or ask (and asking ends in its refusal); where we accept,
PostgreSQL accepts the very text we send; where we refuse and PostgreSQL accepts, the
refusal is one of the deliberate choices the README lists; whatever the fast path lets
through, the converter accepts and PostgreSQL reads. No converter raises anything else.

`make test` runs the `quick` profile (registered in tests/conftest.py);
`pytest tests/test_differential.py --hypothesis-profile=long` runs 20,000 examples per type.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from datetime import UTC, date, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine

from server.csvfile.convert import DELIBERATE, Ask, Refusal, converter_for, escape
from server.csvfile.pattern import value_pattern
from server.targets import Column, load_target
from tests.conftest import ENV
from tests.harness import Database
from tests.support import TEST_SCHEMA

TABLE = f"{TEST_SCHEMA}.every_type"
COLUMNS = {
    "i2": "int2",
    "i4": "int4",
    "i8": "int8",
    "n": "numeric",
    "n52": "numeric(5, 2)",
    "n103": "numeric(10, 3)",
    "n33": "numeric(3, 3)",
    "f4": "float4",
    "f8": "float8",
    "b": "boolean",
    "d": "date",
    "ts": "timestamp",
    "tstz": "timestamptz",
    "t": "time",
    "u": "uuid",
    "ip": "inet",
    "j": "json",
    "jb": "jsonb",
    "tx": "text",
    "vc": "varchar(5)",
    "ch": "char(3)",
    "e": f"{TEST_SCHEMA}.every_mood",
}


@pytest.fixture(scope="module")
def columns(db: Database) -> Iterator[dict[str, Column]]:
    db.execute(f"DROP TABLE IF EXISTS {TABLE}; DROP TYPE IF EXISTS {TEST_SCHEMA}.every_mood")
    db.execute(f"CREATE TYPE {TEST_SCHEMA}.every_mood AS ENUM ('happy', 'sad', 'so-so')")
    db.execute(f"CREATE TABLE {TABLE} ({', '.join(f'{n} {t}' for n, t in COLUMNS.items())})")
    engine = create_engine(ENV["DATABASE_URL"])
    with engine.connect() as connection:
        target = load_target(connection, TABLE, [f"{TEST_SCHEMA}.*"])
    engine.dispose()
    yield {column.name: column for column in target.columns}
    db.execute(f"DROP TABLE IF EXISTS {TABLE}; DROP TYPE IF EXISTS {TEST_SCHEMA}.every_mood")


def postgres_reads(session: Any, column: Column, text: str) -> bool:
    """Whether COPY would take this text into the column."""
    if "\x00" in text:
        return False  # PostgreSQL text cannot hold NUL: no COPY takes it
    reader = column.reader
    assert reader is not None
    with session.cursor() as cursor:
        cursor.execute(
            "SELECT state FROM import_staging.input_problem(%s, %s, %s, %s, %s)",
            (text, reader.function, reader.io_param, reader.typmod, reader.args),
        )
        (state,) = cursor.fetchone()
    return state is None


def verdict(column: Column, value: str) -> tuple[str, str]:
    """The converter's verdict: accept and the COPY text, refuse and the code, or ask and
    the text to ask about. Anything else it raises fails the test."""
    try:
        return "accept", converter_for(column)(value)
    except Refusal as refusal:
        return "refuse", refusal.code
    except Ask as question:
        return "ask", question.text


def judge_one(session: Any, column: Column, value: str) -> None:
    """The whole contract, for one value."""
    said, detail = verdict(column, value)
    if said == "refuse" and postgres_reads(session, column, value):
        assert detail in DELIBERATE, f"we refuse {value!r} ({detail}); PostgreSQL reads it"
    elif said == "ask":
        assert detail == value, "an asked value is asked as written"
    elif said == "accept":
        assert detail == escape(value), "an accepted value goes to COPY as written"
        assert postgres_reads(session, column, value), f"we accept {value!r}; PG refuses it"


def fast_path_agrees(session: Any, column: Column, value: str) -> None:
    pattern = value_pattern(column)
    if pattern is None:
        return
    try:
        raw = value.encode()
    except UnicodeEncodeError:
        return
    if re.fullmatch(pattern, raw) is None:
        return
    assert converter_for(column)(value) == escape(value), f"the fast path takes {value!r}"
    assert postgres_reads(session, column, value), f"the fast path takes {value!r}; PG refuses"


# --- what people and programs write -----------------------------------------------------

SPACE = st.sampled_from(["", "", "", " ", "  ", "\t", "\n", "\r\n", "\xa0", "\u2003", "\x0b"])
OTHER_DIGITS = st.text(
    st.characters(categories=["Nd"], exclude_characters="0123456789"), min_size=1, max_size=4
)
HOSTILE = st.sampled_from(
    [
        "",
        " ",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "+inf",
        "-inf",
        "1e999999",
        "1e-999999",
        "-1e999999",
        "1_000",
        "0x1F",
        "0o17",
        "0b101",
        "1.",
        ".5",
        "-.5",
        "+.5",
        ".",
        "-",
        "+",
        "e5",
        "1e",
        "1e5",
        "1E+05",
        "00012",
        "-0",
        "+0",
        "0.0",
        "1,5",
        "1.234,56",
        "1 000",
        "NULL",
        "null",
        "\\N",
        "NA",
        "true",
        "t",
        "now",
        "today",
        "Tomorrow",
        " yesterday ",
        "epoch",
        "infinity",
        "-infinity",
        "allballs",
        "[]",
        "{}",
        '"x"',
        "\x00",
        "a\x00b",
        "\ufeff1",
    ]
)
HUGE = st.integers(19, 6000).flatmap(
    lambda n: st.sampled_from(
        ["9" * n, "1" + "0" * n, "-" + "9" * n, "0." + "1" * n, "1" * n + ".5"]
    )
)


def padded(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(SPACE, values, SPACE).map("".join)


def either(*choices: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    base = st.one_of(*choices)
    return st.one_of(
        base, base, base, padded(base), HOSTILE, HUGE, OTHER_DIGITS, st.text(max_size=12)
    )


INTEGERS = either(
    st.integers(-(2**64), 2**64).map(str),
    st.integers(-(2**15) - 2, 2**15 + 2).map(str),
    st.tuples(st.sampled_from(["+", "-", "", "00"]), st.integers(0, 2**63).map(str)).map("".join),
)


def decimal_texts(value: Decimal) -> st.SearchStrategy[str]:
    return st.sampled_from([str(value), f"{value:f}", f"{value:e}", f"{value:E}"])


NUMBERS = either(
    st.decimals(allow_nan=True, allow_infinity=True, places=None).flatmap(decimal_texts),
    st.decimals(min_value=-1000, max_value=1000, places=4).flatmap(decimal_texts),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(width=32).map(repr),
    st.integers(-(10**30), 10**30).map(str),
)
BOOLEANS = either(
    st.sampled_from(
        [
            "true",
            "false",
            "t",
            "f",
            "yes",
            "no",
            "y",
            "n",
            "on",
            "off",
            "1",
            "0",
            "tr",
            "tru",
            "fa",
            "fals",
            "ye",
            "of",
            "o",
            "2",
            "-1",
            "ja",
            "oui",
        ]
    ).flatmap(lambda word: st.sampled_from([word, word.upper(), word.title()])),
)
DATES = st.dates(date(1, 1, 1), date(9999, 12, 31))
DATE_FORMATS = [
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%Y%m%d",
    "%b %d %Y",
    "%d %B %Y",
    "%Y-%j",
    "%d-%m-%y",
    "%m-%d-%Y",
]
DATE_TEXTS = either(
    st.tuples(DATES, st.sampled_from(DATE_FORMATS)).map(lambda p: p[0].strftime(p[1])),
    st.tuples(st.integers(0, 10999), st.integers(0, 14), st.integers(0, 32)).map(
        lambda p: f"{p[0]:04d}-{p[1]:02d}-{p[2]:02d}"
    ),
)
ZONES = st.sampled_from(
    [
        "",
        "",
        "Z",
        "+00",
        "+05",
        "-0330",
        "+05:30",
        "-12:00",
        "+14:00",
        "+15:00",
        " UTC",
        " EST",
        " Europe/Paris",
        "z",
        "+0",
        "+5:30",
    ]
)
FRACTIONS = st.integers(0, 9).flatmap(
    lambda n: (
        st.just("") if n == 0 else st.text("0123456789", min_size=n, max_size=n).map(".".__add__)
    )
)
TIMESTAMPS = either(
    st.tuples(
        DATES,
        st.times(),
        st.sampled_from(["T", " ", "t", "  "]),
        FRACTIONS,
        ZONES,
    ).map(lambda p: f"{p[0].isoformat()}{p[2]}{p[1].strftime('%H:%M:%S')}{p[3]}{p[4]}"),
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-7))])).map(
        lambda moment: moment.isoformat()
    ),
    DATE_TEXTS,
    st.tuples(st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)).map(
        lambda p: f"2024-03-01 {p[0]:02d}:{p[1]:02d}:{p[2]:02d}"
    ),
)
TIMES = either(
    st.tuples(st.times(), FRACTIONS).map(lambda p: p[0].strftime("%H:%M:%S") + p[1]),
    st.times().map(time.isoformat),
    st.tuples(st.integers(0, 25), st.integers(0, 61)).map(lambda p: f"{p[0]:02d}:{p[1]:02d}"),
    st.sampled_from(["24:00:00", "24:00:01", "10:00 PM", "10:00:00+02", "allballs", "noon"]),
)
UUIDS = either(
    st.uuids().flatmap(
        lambda u: st.sampled_from(
            [
                str(u),
                str(u).upper(),
                u.hex,
                "{" + str(u) + "}",
                u.urn,
                "-".join(u.hex[i : i + 4] for i in range(0, 32, 4)),
                str(u)[:-1],
                str(u) + "0",
            ]
        )
    ),
)
INETS = either(
    st.ip_addresses(v=4).map(str),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 40)).map(lambda p: f"{p[0]}/{p[1]}"),
    st.ip_addresses(v=6).map(str),
    st.sampled_from(
        ["010.0.0.1", "1.2.3", "256.1.1.1", "1.2.3.4/33", "::ffff:1.2.3.4", "1.2.3.4/"]
    ),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
JSONS = either(
    JSON_VALUES.map(json.dumps),
    JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 200_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(
        [
            '"\\u0000"',
            '"\\ud800"',
            '"\\ud83d\\ude00"',
            "NaN",
            "[1,]",
            "1e999999",
            "-0",
            "01",
            '{"a":1,"a":2}',
            "[1 2]",
            '"\t"',
            '"\\\'"',
            "1" * 5000,
        ]
    ),
)
TEXTS = either(
    st.text(max_size=8),
    st.text(string.ascii_letters + " ", max_size=8),
    st.sampled_from(["happy", "sad", "so-so", "Happy", "happy ", " sad"]),
)


def check(session: Any, column: Column, value: str) -> None:
    judge_one(session, column, value)
    fast_path_agrees(session, column, value)


def differential(name: str, values: st.SearchStrategy[str]) -> Any:
    @given(value=values)
    def test(columns: dict[str, Column], session: Any, value: str) -> None:
        check(session, columns[name], value)

    test.__name__ = (
        f"test_{name}_{COLUMNS[name].split('(')[0].split('.')[-1]}_agrees_with_postgresql"
    )
    return test


test_int2 = differential("i2", INTEGERS)
test_int4 = differential("i4", INTEGERS)
test_int8 = differential("i8", INTEGERS)
test_numeric = differential("n", NUMBERS)
test_numeric_5_2 = differential("n52", NUMBERS)
test_numeric_10_3 = differential("n103", NUMBERS)
test_numeric_3_3 = differential("n33", NUMBERS)
test_float4 = differential("f4", NUMBERS)
test_float8 = differential("f8", NUMBERS)
test_boolean = differential("b", BOOLEANS)
test_date = differential("d", DATE_TEXTS)
test_timestamp = differential("ts", TIMESTAMPS)
test_timestamptz = differential("tstz", TIMESTAMPS)
test_time = differential("t", TIMES)
test_uuid = differential("u", UUIDS)
test_inet = differential("ip", INETS)
test_json = differential("j", JSONS)
test_jsonb = differential("jb", JSONS)
test_text = differential("tx", TEXTS)
test_varchar = differential("vc", TEXTS)
test_char = differential("ch", TEXTS)
test_enum = differential("e", TEXTS)


def test_the_deliberate_choices_are_real_disagreements(
    columns: dict[str, Column], session: Any
) -> None:
    """Each deliberate refusal is a value PostgreSQL would take: the list is not padding."""
    taken = {
        "unexpected_time_zone": (columns["ts"], "2024-01-02T03:04:05+02:00"),
        "ambiguous_date": (columns["d"], "01/02/2024"),
        "relative_date": (columns["d"], "today"),
    }
    assert set(taken) == set(DELIBERATE)
    for code, (column, value) in taken.items():
        with pytest.raises(Refusal) as refused:
            converter_for(column)(value)
        assert refused.value.code == code
        assert postgres_reads(session, column, value)


def test_the_dates_the_checks_know_are_the_dates_postgresql_knows(
    columns: dict[str, Column], session: Any
) -> None:
    """Every day of a leap year and of a common year, and the days that are not."""
    day = date(2023, 1, 1)
    while day < date(2025, 1, 1):
        check(session, columns["d"], day.isoformat())
        day += timedelta(days=1)
    for text in ("2023-02-29", "2024-02-30", "2024-04-31", "2024-00-10", "2024-12-32"):
        check(session, columns["d"], text)
