"""Numbers and dates written the local way: `59.263,50`, `59 263,50`, `02.02.1991`,
`12/31/2024`, and Excel's `sep=;` first line.

The files are written with Babel, which formats numbers and dates from the Unicode CLDR's
locale data as spreadsheets and local systems do (a narrow no-break space groups French
thousands, an apostrophe Swiss ones). What lands must be what PostgreSQL stores for the ISO
text of each value; decimals are compared as `Decimal`, never as floats.
"""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg2
import pytest
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from server.csvfile.convert import Ask, Refusal, converter_for
from server.csvfile.detect import UnknownDelimiter, detect_layout
from server.csvfile.formats import (
    DATE_FORMATS,
    RUN_THOUSANDS,
    AmbiguousFormat,
    Formats,
    date_style,
    detect_formats,
    iso_date,
    plain_number,
)
from server.csvfile.head import read_head
from server.csvfile.pattern import local_number, value_pattern
from server.targets import Column
from tests.conftest import MakeTable
from tests.harness import Database, Process
from tests.support import upload, wait_for_job

# Each locale's decimal mark, as Babel writes its numbers.
LOCALES = {
    "de_DE": ",",
    "fr_FR": ",",
    "pl_PL": ",",
    "sv_SE": ",",  # a minus sign (U+2212), not a hyphen
    "en_US": ".",
    "de_CH": ".",
}
# Each date format as a CLDR pattern.
PATTERNS = {
    "YYYY-MM-DD": "yyyy-MM-dd",
    "DD.MM.YYYY": "dd.MM.yyyy",
    "DD/MM/YYYY": "dd/MM/yyyy",
    "MM/DD/YYYY": "MM/dd/yyyy",
    "DD-MM-YYYY": "dd-MM-yyyy",
    "YYYYMMDD": "yyyyMMdd",
}
NUMBER = Column("amount", "numeric", True, False)
WHOLE = Column("quantity", "int4", True, False)
DAY = Column("born", "date", True, False)

decimals = st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False)


@given(decimals, st.sampled_from(sorted(LOCALES)), st.sampled_from(["#,##0.00", "0.00"]))
def test_a_number_written_by_any_locale_reads_as_exactly_its_decimal(
    value: Decimal, locale: str, pattern: str
) -> None:
    written = format_decimal(value, format=pattern, locale=locale)
    assert Decimal(str(plain_number(written, LOCALES[locale]))) == value


@given(st.dates(min_value=date(1000, 1, 1)), st.sampled_from(sorted(PATTERNS)))
def test_a_date_written_in_any_format_reads_as_its_iso_date(day: date, name: str) -> None:
    assert iso_date(format_date(day, PATTERNS[name], locale="en"), name) == day.isoformat()
    if name not in ("YYYYMMDD", "YYYY-MM-DD"):  # one digit for a day or month, too
        short = PATTERNS[name].replace("dd", "d").replace("MM", "M")
        assert iso_date(format_date(day, short, locale="en"), name) == day.isoformat()


@pytest.mark.parametrize(
    ("value", "mark"),
    [("12.34", ","), ("1.23.456", ","), ("1,2", "."), ("1.234 567,8", ","), ("", ","), (",", ",")],
)
def test_what_is_not_a_number_in_the_mark_is_none(value: str, mark: str) -> None:
    assert plain_number(value, mark) is None


@pytest.mark.parametrize(
    ("value", "name"),
    [("31.02.2024", "DD.MM.YYYY"), ("13/01/2024", "MM/DD/YYYY"), ("2024-01-31", "DD.MM.YYYY")],
)
def test_what_is_not_a_date_in_the_format_is_none(value: str, name: str) -> None:
    assert iso_date(value, name) is None


def sample(*rows: tuple[str, str, str]) -> list[tuple[int, list[str]]]:
    return [(line, list(row)) for line, row in enumerate(rows, 2)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # ISO dates and plain decimals: nothing to decide, PostgreSQL reads them.
        (sample(("12.50", "7", "2024-01-31"), ("3", "1", "2024-02-01")), Formats()),
        # Both marks in one value decide; a day above 12 decides day-first.
        (
            sample(("59.263,50", "1", "02.02.1991"), ("1,5", "2", "13.03.2000")),
            Formats(",", "DD.MM.YYYY"),
        ),
        (
            sample(("1,234.56", "1", "12/31/2024"), ("3", "2", "01/02/2024")),
            Formats(".", "MM/DD/YYYY"),
        ),
        (
            sample(("1 234,5", "1", "31/12/2024"), ("2", "1", "01/02/2024")),
            Formats(",", "DD/MM/YYYY"),
        ),
        # A thousands separator in a whole number decides it is not the decimal mark.
        (
            sample(
                ("2", "1.234", "20240131"),
            ),
            Formats(",", "YYYYMMDD"),
        ),
        (
            sample(
                ("2", "1,234", "31-01-2024"),
            ),
            Formats(".", "DD-MM-YYYY"),
        ),
        # The majority of values wins; the odd one out is then refused as a row.
        (sample(("1", "1", "2024-01-31"), ("2", "1", "31/12/2024")), Formats()),
        (sample(("10.00", "1", ""), ("20.00", "1", ""), ("30,50", "1", "")), Formats(".")),
    ],
)
def test_the_first_rows_decide_the_formats(
    rows: list[tuple[int, list[str]]], expected: Formats
) -> None:
    assert detect_formats(rows, [NUMBER, WHOLE, DAY], [""], Formats()) == expected


@pytest.mark.parametrize(
    ("rows", "field", "line", "readings"),
    [
        (
            sample(("3", "1", "2024-01-01"), ("1,234", "1", "")),
            "decimal",
            3,
            {"decimal .": "1234", "decimal ,": "1.234"},
        ),
        (
            sample(("3", "1", "01/02/2024"), ("4", "1", "05/06/2024")),
            "date_format",
            2,
            {"DD/MM/YYYY": "2024-02-01", "MM/DD/YYYY": "2024-01-02"},
        ),
    ],
)
def test_rows_that_read_two_ways_ask_for_the_field(
    rows: list[tuple[int, list[str]]], field: str, line: int, readings: dict[str, str]
) -> None:
    with pytest.raises(AmbiguousFormat) as ambiguous:
        detect_formats(rows, [NUMBER, WHOLE, DAY], [""], Formats())
    assert (ambiguous.value.field, ambiguous.value.line) == (field, line)
    assert ambiguous.value.readings == readings
    given_field = Formats(",") if field == "decimal" else Formats(date_format="MM/DD/YYYY")
    detect_formats(rows, [NUMBER, WHOLE, DAY], [""], given_field)  # the field decides


@pytest.mark.parametrize(
    ("column", "formats", "value", "code"),
    [
        (NUMBER, Formats(","), "12.34", "not_number"),
        (NUMBER, Formats("."), "30,50", "not_number"),
        (DAY, Formats(date_format="DD.MM.YYYY"), "31.02.2024", "not_date"),
        (DAY, Formats(date_format="DD.MM.YYYY"), "02/03/2024", "not_date"),
    ],
)
def test_a_value_not_in_the_files_format_is_refused_not_misread(
    column: Column, formats: Formats, value: str, code: str
) -> None:
    with pytest.raises(Refusal) as refused:
        converter_for(column, formats)(value)
    assert refused.value.code == code


def test_an_excel_sep_line_names_the_delimiter_and_is_skipped() -> None:
    for data in (b"sep=;\r\nid;name\r\n1;a\r\n", b'"sep=;"\r\nid;name\r\n1;a\r\n'):
        layout = detect_layout(data)
        assert (layout.delimiter, layout.terminator, layout.sep_line) == (";", "\r\n", True)
        head = read_head(data, layout, whole_file=True)
        assert (head.header, head.data_line, head.rows) == (["id", "name"], 3, [(3, ["1", "a"])])
    with pytest.raises(UnknownDelimiter):
        detect_layout(b"sep=#\nid#name\n1#a\n")


def test_the_first_rows_are_read_whole_with_their_line_numbers() -> None:
    data = b'id;name\n1;"two\nlines"\n\n2;b\n3;c\n'
    layout = detect_layout(data)
    first = [(2, ["1", "two\nlines"]), (5, ["2", "b"])]
    assert read_head(data, layout, whole_file=True).rows == [*first, (6, ["3", "c"])]
    # A head cut short: its last record may be cut short too, so it is left out.
    cut = data[: data.index(b"3;")] + b'3;"unfinished'
    assert read_head(cut, layout, whole_file=False).rows == first


# --- PostgreSQL is the judge ------------------------------------------------------------

STAMP = Column("seen", "timestamp", True, False)
STAMP_TZ = Column("seen", "timestamptz", True, False)
DATE_KINDS = {"date": DAY, "timestamp": STAMP, "timestamptz": STAMP_TZ}


def postgres_value(session: Any, kind: str, text: str, style: str | None = None) -> object:
    """PostgreSQL's reading of `text` as `kind` (under `style` if given), or a refusal."""
    with session.cursor() as cursor:
        cursor.execute("SET datestyle = %s", (style or "ISO, MDY",))
        try:
            cursor.execute(f"SELECT %s::{kind}", (text,))
            return cursor.fetchone()[0]
        except psycopg2.DataError:
            return "refused"
        finally:
            cursor.execute("RESET datestyle")


def written_dates() -> st.SearchStrategy[str]:
    """Dates as the formats write them, with and without a time, some of them not dates."""
    day = st.dates(min_value=date(900, 1, 1), max_value=date(3100, 12, 31))
    pattern = st.sampled_from(sorted({*PATTERNS.values(), "d.M.yyyy", "M/d/yyyy", "d-M-yyyy"}))
    clock = st.sampled_from(["", " HH:mm", " HH:mm:ss", "'T'HH:mm:ss.SSS", " HH:mm:ssZZZZZ"])
    moment = st.builds(datetime.combine, day, st.times())
    good = st.builds(lambda m, p, c: format_datetime(m, p + c, locale="en"), moment, pattern, clock)
    odd = st.from_regex(r"\A[0-9]{1,4}[./-][0-9]{1,3}[./-][0-9]{1,5}( [0-9:]{1,8})?\Z")
    return st.one_of(good, odd)


@settings(max_examples=300, deadline=None)
@given(
    value=written_dates(),
    name=st.sampled_from(sorted(DATE_FORMATS)),
    kind=st.sampled_from(sorted(DATE_KINDS)),
)
def test_a_local_date_lands_as_postgresql_reads_its_iso_text_and_the_fast_path_agrees(
    session: Any, value: str, name: str, kind: str
) -> None:
    formats, column = Formats(date_format=name), DATE_KINDS[kind]
    try:
        sent: str | None = converter_for(column, formats)(value)
    except (Refusal, Ask):
        sent = None
    if sent is not None:
        reading = iso_date(value, name) or value
        assert postgres_value(session, kind, sent) == postgres_value(session, kind, reading)
    pattern = value_pattern(column, formats)
    if pattern is not None and re.fullmatch(pattern, value.encode()):
        assert sent is not None, f"the fast path takes {value!r}, the converter does not"
        as_written = postgres_value(session, kind, value, date_style(formats))
        assert as_written == postgres_value(session, kind, sent) != "refused"


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.builds(
            lambda n, locale, p: format_decimal(n, format=p, locale=locale),
            decimals,
            st.sampled_from(sorted(LOCALES)),
            st.sampled_from(["#,##0.00", "0.00", "#,##0", "0.###E0"]),
        ),
        st.from_regex(r"\A[-+]?[0-9 .,']{1,12}(e[0-9]{1,3})?\Z"),
    ),
    mark=st.sampled_from([".", ","]),
    kind=st.sampled_from(["numeric", "numeric(8,2)", "int4", "float8"]),
)
def test_a_local_number_lands_as_postgresql_reads_its_plain_text_and_the_fast_path_agrees(
    session: Any, value: str, mark: str, kind: str
) -> None:
    base, _, scale = kind.partition("(")
    precision = (8, 2) if scale else (None, None)
    column = Column("amount", base, True, False, precision=precision[0], scale=precision[1])
    formats = Formats(mark)
    try:
        sent: str | None = converter_for(column, formats)(value)
    except (Refusal, Ask) as outcome:
        sent = outcome.text if isinstance(outcome, Ask) else None
        if sent is not None:  # asked: PostgreSQL reads the plain text or refuses it
            assert sent == plain_number(value, mark) or sent == value
            sent = None
    plain = plain_number(value, mark)
    if sent is not None:
        assert plain is not None
        landed = postgres_value(session, kind, sent)
        assert landed == postgres_value(session, kind, plain) != "refused"
    pattern = value_pattern(column, formats)
    if pattern is not None and re.fullmatch(pattern, value.encode()):
        assert sent is not None, f"the fast path takes {value!r}, the converter does not"
        assert postgres_value(session, kind, value) == postgres_value(session, kind, sent)
    grouped = local_number(column, mark, None)
    if grouped is not None and re.fullmatch(grouped, value.encode()):
        assert sent is not None, f"a run takes {value!r}, the converter does not"
        marks = mark + RUN_THOUSANDS[mark]
        with session.cursor() as cursor:  # as the staging table's generated column reads it
            cursor.execute(f"SELECT translate(%s, %s, '.')::{kind}", (value, marks))
            assert cursor.fetchone()[0] == postgres_value(session, kind, sent)


# --- through the whole service ---------------------------------------------------------

EXPORT = (
    "(id int PRIMARY KEY, name text, amount numeric(14,2), quantity int, born date, seen timestamp)"
)


def export_rows(count: int, locale: str, date_format: str) -> tuple[list[list[str]], list[Any]]:
    """Rows as a spreadsheet in `locale` exports them, and the values they stand for."""
    pick = random.Random(count)
    written, values = [], []
    for n in range(1, count + 1):
        amount = Decimal(pick.randrange(-(10**9), 10**11)) / 100
        quantity = pick.randrange(0, 10**7)
        born = date(1930, 1, 1) + timedelta(days=pick.randrange(30000))
        seen = datetime(2020, 1, 1) + timedelta(seconds=pick.randrange(10**9))
        # Leap days go the careful way (the row pattern leaves them to the calendar).
        if (born.month, born.day) == (2, 29):
            born += timedelta(days=1)
        if (seen.month, seen.day) == (2, 29):
            seen += timedelta(days=1)
        pattern = PATTERNS[date_format]
        written.append(
            [
                str(n),
                f"Name {n}; „quoted“",
                format_decimal(amount, format="#,##0.00", locale=locale),
                format_decimal(quantity, format="#,##0", locale=locale),
                format_date(born, pattern, locale=locale),
                format_datetime(seen, f"{pattern} HH:mm:ss", locale=locale),
            ]
        )
        values.append((n, f"Name {n}; „quoted“", amount, quantity, born, seen))
    return written, values


def export_file(rows: list[list[str]], delimiter: str = ";", sep_line: bool = False) -> bytes:
    out = io.StringIO()
    if sep_line:
        out.write(f"sep={delimiter}\r\n")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["id", "name", "amount", "quantity", "born", "seen"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@pytest.mark.parametrize(
    ("locale", "date_format", "delimiter", "decimal", "fast"),
    [
        ("de_DE", "DD.MM.YYYY", ";", ",", True),
        # Thousands grouped by (narrow) no-break spaces or apostrophes go the careful way.
        ("fr_FR", "DD/MM/YYYY", ";", ",", False),
        ("pl_PL", "DD-MM-YYYY", "\t", ",", False),
        ("en_US", "MM/DD/YYYY", ",", ".", True),
        ("de_CH", "YYYYMMDD", ";", ".", False),
    ],
)
def test_a_local_export_loads_every_row_exactly_with_no_field_given(
    locale: str,
    date_format: str,
    delimiter: str,
    decimal: str,
    fast: bool,
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
) -> None:
    rows, values = export_rows(3000, locale, date_format)
    target = table(EXPORT)

    response = upload(client, export_file(rows, delimiter, sep_line=locale == "de_DE"), target)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 3000, 0)
    assert (job["decimal"], job["date_format"], job["delimiter"]) == (
        decimal,
        date_format,
        delimiter,
    )
    assert db.rows(f"SELECT * FROM {target} ORDER BY id") == values
    if fast:  # every line took the fast path: COPY read it as written
        assert job["rows_careful"] == 0


def test_a_local_export_lands_the_same_rows_staged_as_in_one_transaction(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    """Numbers in the file's own way reach the target by two roads: through a temporary
    table that each batch passes (an append, in one transaction), or through the staging
    table's generated columns (an upsert, as for big files and retries)."""
    rows, values = export_rows(3000, "de_DE", "DD.MM.YYYY")
    content = export_file(rows)
    at_once, staged = table(EXPORT), table(EXPORT)

    jobs = [
        wait_for_job(client, upload(client, content, target, mode=mode).json()["id"])
        for target, mode in ((at_once, "append"), (staged, "upsert"))
    ]

    assert [(job["status"], job["rows_loaded"], job["rows_careful"]) for job in jobs] == [
        ("completed", 3000, 0)
    ] * 2
    assert db.rows(f"SELECT * FROM {at_once} ORDER BY id") == values
    assert db.rows(f"SELECT * FROM {staged} ORDER BY id") == values


def test_values_not_in_the_files_format_are_refused_on_their_line(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    rows, _ = export_rows(50, "de_DE", "DD.MM.YYYY")
    rows[9][2] = "12.34"  # a dot where the file writes a comma: not 1234, not 12.34
    rows[19][4] = "31.02.2000"
    rows[29][4] = "2000-02-03"  # ISO dates are read in any file
    target = table(EXPORT)

    job = wait_for_job(
        client, upload(client, export_file(rows, sep_line=True), target).json()["id"]
    )

    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["column"], r["code"]) for r in refused] == [
        (12, "amount", "not_number"),
        (22, "born", "not_date"),
    ]
    landed = db.rows(f"SELECT id, born FROM {target} WHERE id = 30")
    assert landed == [(30, date(2000, 2, 3))]
    assert job["rows_loaded"] == 48


@pytest.mark.parametrize(
    ("content", "field", "line", "value"),
    [
        (b"id;amount\n1;3\n2;1,234\n", "decimal", 3, "1,234"),
        (b"id,born\n1,01/02/2024\n2,05/06/2024\n", "date_format", 2, "01/02/2024"),
    ],
)
def test_an_ambiguous_file_is_refused_with_both_readings_until_the_field_says(
    content: bytes,
    field: str,
    line: int,
    value: str,
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
) -> None:
    target = table("(id int PRIMARY KEY, amount numeric, born date)")

    response = upload(client, content, target)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"], error["line"], error["value"]) == (
        "ambiguous_format",
        field,
        line,
        value,
    )
    assert len(error["readings"]) == 2
    assert db.rows(f"SELECT count(*) FROM {target}") == [(0,)]

    chosen = {"decimal": ","} if field == "decimal" else {"date_format": "DD/MM/YYYY"}
    job = wait_for_job(
        client, upload(client, content, target, "data.csv", None, **chosen).json()["id"]
    )
    assert job["status"] == "completed"
    expected = Decimal("1.234") if field == "decimal" else date(2024, 2, 1)
    column = "amount" if field == "decimal" else "born"
    assert db.rows(f"SELECT {column} FROM {target} WHERE id = {line - 1}") == [(expected,)]


@pytest.mark.parametrize(("field", "value"), [("decimal", ";"), ("date_format", "DD.MM.YY")])
def test_a_format_field_out_of_its_choices_is_refused(
    field: str, value: str, client: httpx.Client, table: MakeTable
) -> None:
    response = upload(client, b"id\n1\n", table("(id int)"), "data.csv", None, **{field: value})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_every_date_format_is_offered() -> None:
    assert set(PATTERNS) == set(DATE_FORMATS)
