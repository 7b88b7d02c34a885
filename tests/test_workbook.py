"""Workbooks: an xlsx lands the same rows as its CSV, its cells read by their types, its
refused rows named by the sheet's row numbers.

The workbooks are written by two independent libraries that spreadsheet exports come from:
openpyxl (inline strings, its own date formats) and XlsxWriter (shared strings, the number
formats a user picks), in read-only streaming as a 100,000-row sheet and in full.
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
import xlsxwriter
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P

from server.api.books import IN_MEMORY_LIMIT
from server.api.workbook import cell_text, sheet_to_csv
from tests.conftest import MakeTable, stored_files
from tests.harness import Database, Process
from tests.support import upload, wait_for_job

DDL = (
    "(id bigint PRIMARY KEY, name text, amount numeric(14,2), ratio double precision, "
    "born date, seen timestamp, active boolean, note text)"
)
HEADER = ["id", "name", "amount", "ratio", "born", "seen", "active", "note"]
NAMES = ["Anna", "José Núñez", 'Bob "the builder"', "Smith, John", "Мария", "李雷", ""]
Row = list[Any]


def values(count: int) -> Iterator[Row]:
    """Typed cells as a user's sheet holds them; text that needs quoting in a CSV too."""
    pick = random.Random(count)
    for i in range(1, count + 1):
        yield [
            i,
            pick.choice(NAMES) or None,
            round(pick.uniform(-10_000, 10_000), 2),
            round(pick.random() * 10 ** pick.randint(-3, 6), 6),
            date(1950, 1, 1) + timedelta(days=pick.randrange(30_000)),
            datetime(2024, 1, 1) + timedelta(seconds=pick.randrange(10**8)),
            i % 3 == 0,
            None if i % 5 else f"note {i}",
        ]


def as_csv(rows: list[Row]) -> bytes:
    """The same rows as a CSV: the text a careful exporter would write for each value."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        return value.isoformat() if isinstance(value, date) else str(value)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([text(value) for value in row] for row in rows)
    return out.getvalue().encode()


def by_openpyxl(rows: list[Row]) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("export")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def cells(rows: list[Row]) -> Iterator[tuple[int, int, Any]]:
    """(row, column, value) of the header and the rows, from 0, empty cells left out."""
    for number, row in enumerate([HEADER, *rows]):
        for column, value in enumerate(row):
            if value is not None:
                yield number, column, value


def by_xlsxwriter(rows: list[Row]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("export")
    formats = {
        datetime: book.add_format({"num_format": "dd/mm/yyyy hh:mm:ss"}),
        date: book.add_format({"num_format": "dd.mm.yyyy"}),
    }
    for number, column, value in cells(rows):
        if isinstance(value, date):
            sheet.write_datetime(number, column, value, formats[type(value)])
        else:
            sheet.write(number, column, value)
    book.close()
    return out.getvalue()


def by_xlwt(rows: list[Row]) -> bytes:
    """Excel 97-2003 (.xls), as xlwt writes it."""
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("export")
    styles = {
        datetime: xlwt.easyxf(num_format_str="DD/MM/YYYY HH:MM:SS"),
        date: xlwt.easyxf(num_format_str="DD.MM.YYYY"),
    }
    for number, column, value in cells(rows):
        if isinstance(value, date):
            sheet.write(number, column, value, styles[type(value)])
        else:
            sheet.write(number, column, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def by_odfpy(rows: list[Row]) -> bytes:
    """OpenDocument (.ods), as odfpy writes it: each cell with its value type."""
    document = OpenDocumentSpreadsheet()
    table = Table(name="export")

    def cell(value: Any) -> TableCell:
        if value is None:
            return TableCell()
        if isinstance(value, bool):
            return TableCell(valuetype="boolean", booleanvalue=str(value).lower())
        if isinstance(value, int | float):
            return TableCell(valuetype="float", value=value)
        if isinstance(value, date):
            return TableCell(valuetype="date", datevalue=value.isoformat())
        text = TableCell(valuetype="string")
        text.addElement(P(text=value))
        return text

    for row in [HEADER, *rows]:
        line = TableRow()
        for value in row:
            line.addElement(cell(value))
        table.addElement(line)
    document.spreadsheet.addElement(table)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


WRITERS: dict[str, tuple[Callable[[list[Row]], bytes], int]] = {
    "openpyxl": (by_openpyxl, 100_000),
    "XlsxWriter": (by_xlsxwriter, 20_000),
    "xlwt (xls)": (by_xlwt, 5_000),
    "odfpy (ods)": (by_odfpy, 5_000),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_workbook_lands_the_same_rows_as_its_csv(
    writer: str, client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    make, count = WRITERS[writer]
    rows = list(values(count))
    from_csv, from_sheet = table(DDL), table(DDL)

    jobs = [
        wait_for_job(client, upload(client, content, target, name=name).json()["id"])
        for content, target, name in (
            (as_csv(rows), from_csv, "export.csv"),
            (make(rows), from_sheet, "export.xlsx"),
        )
    ]

    assert [(job["status"], job["rows_loaded"]) for job in jobs] == [("completed", count)] * 2
    assert (jobs[1]["sheet"], jobs[1]["compression"]) == ("export", None)
    assert db.fingerprint(from_sheet) == db.fingerprint(from_csv)
    assert db.rows(f"SELECT count(*) FROM {from_sheet} WHERE note IS NULL") == [
        (count - count // 5,)
    ]


def sheet_with_problems() -> bytes:
    """A sheet as people make them: a hidden sheet first, the table from B3, a cell with a
    line break, an empty row, and two cells that are not what their column holds."""
    book = openpyxl.Workbook()
    cover = book.active
    assert cover is not None
    cover.title, cover.sheet_state = "cover", "hidden"
    cover["A1"] = "read me first"
    data = book.create_sheet("data")
    data.append([])
    data.append([])
    data.append([None, *HEADER])
    data.append([None, 1, "Anna", 10.5, 0.25, date(1990, 1, 2), None, True, None])
    data.append([None, 2, "Bob", 11, 1, date(1991, 2, 3), None, False, "two\nlines"])
    data.append([])
    data.append([None, "three", "Carl", 12, 2, date(1992, 3, 4), None, True, None])
    data.append([None, 4, "Dora", 13, 3, date(1993, 4, 5), None, True, "x\ny\nz"])
    data.append([None, 5, "Emil", "12,5", 4, date(1994, 5, 6), None, False, None])
    data.append([None, 6, "Fay", 14, 5, datetime(1995, 6, 7, 8, 9, 10), None, True, None])
    book.create_sheet("other").append(["id", "name"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_refused_cells_are_named_by_the_sheets_row_numbers(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    target = table(DDL)

    job = wait_for_job(client, upload(client, sheet_with_problems(), target).json()["id"])
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    report = client.get(f"/imports/{job['id']}/errors", params={"format": "csv"}).text

    assert (job["status"], job["sheet"], job["rows_loaded"]) == ("completed", "data", 4)
    assert [(row["line"], row["code"]) for row in refused] == [
        (7, "not_integer"),
        (9, "not_number"),
    ]
    assert refused[0]["raw"] == "three,Carl,12,2,1992-03-04,,true,"
    assert "row 9: " in report
    assert db.rows(f"SELECT id, note, born FROM {target} ORDER BY id") == [
        (1, None, date(1990, 1, 2)),
        (2, "two\nlines", date(1991, 2, 3)),
        (4, "x\ny\nz", date(1993, 4, 5)),
        (6, None, date(1995, 6, 7)),
    ]


@pytest.mark.parametrize(("sheet", "rows"), [("other", 0), ("3", 0), ("data", 4)])
def test_the_sheet_field_chooses_a_sheet_by_name_or_position(
    sheet: str, rows: int, client: httpx.Client, worker: Process, table: MakeTable
) -> None:
    response = upload(client, sheet_with_problems(), table(DDL), sheet=sheet)

    if rows == 0:  # the sheet `other` has a header and nothing under it
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "no_rows"
        return
    job = wait_for_job(client, response.json()["id"])
    assert (job["sheet"], job["rows_loaded"]) == (sheet, rows)


def _not_a_workbook() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "sheet", "status", "code"),
    [
        (b"", "nowhere", 422, "unknown_sheet"),
        (_not_a_workbook(), "", 415, "unsupported_spreadsheet"),
        # An Excel 97-2003 file: its first bytes, and no more.
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000), "", 415, "unsupported_spreadsheet"),
    ],
    ids=["unknown sheet", "an Office file that is no workbook", "a broken xls"],
)
def test_a_workbook_that_cannot_be_read_is_refused_and_leaves_nothing(
    content: bytes,
    sheet: str,
    status: int,
    code: str,
    client: httpx.Client,
    table: MakeTable,
) -> None:
    before = stored_files()

    response = upload(client, content or sheet_with_problems(), table(DDL), sheet=sheet)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if code == "unknown_sheet":
        assert response.json()["error"]["sheets"] == ["cover", "data", "other"]
    assert stored_files() == before


@pytest.mark.parametrize(
    "make",
    [
        lambda: by_openpyxl(list(values(3_000))),
        lambda: by_xlsxwriter(list(values(3_000))),
        sheet_with_problems,
    ],
    ids=["openpyxl", "XlsxWriter", "problems"],
)
def test_the_streaming_reader_and_the_whole_sheet_reader_write_the_same_csv(
    make: Callable[[], bytes],
) -> None:
    """A big xlsx is streamed by openpyxl, a small one read whole by calamine: the two
    must not tell apart."""
    content = make()
    written = []
    for limit in (0, IN_MEMORY_LIMIT):
        sink = io.BytesIO()
        result = sheet_to_csv(io.BytesIO(content), sink, None, limit)
        written.append((sink.getvalue(), result))

    assert written[0] == written[1]
    assert written[0][1].rows > 1


@pytest.mark.parametrize(
    ("cell", "text"),
    [
        (0.1 + 0.2, "0.3"),  # as the sheet shows it, to Excel's 15 digits
        (1234.5, "1234.5"),
        (5.0, "5"),
        (1e20, "100000000000000000000"),
        (-1.5e-7, "-1.5e-07"),
        (12345678901234567890, "12345678901234567890"),  # an int cell keeps its digits
        (True, "true"),
        (datetime(2024, 2, 29), "2024-02-29"),
        (datetime(2024, 2, 29, 13, 45, 1, 500), "2024-02-29 13:45:01.000500"),
        (timedelta(days=1, seconds=5), "1 days 5 seconds 0 microseconds"),
        (None, ""),
    ],
)
def test_a_cell_is_written_as_postgresql_reads_its_type(cell: Any, text: str, db: Database) -> None:
    assert cell_text(cell) == text
    if isinstance(cell, float):  # PostgreSQL reads the text back as the sheet's number
        [(stored,)] = db.rows("SELECT %s::float8", (text,))
        assert abs(stored - cell) <= abs(cell) * 1e-15
