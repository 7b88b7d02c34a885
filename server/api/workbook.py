"""A workbook's sheet, read row by row into the CSV that the rest of the pipeline knows.

An uploaded workbook is stored as it came; before it is accepted, one of its sheets (the
first visible one, or the upload's `sheet`) is read (see `server/api/books.py`) and
written in its place as CSV, a row at a time. Cells are written as PostgreSQL reads their
types: numbers by their value to Excel's precision (`0.3`, not a double's
`0.30000000000000004`; whole numbers without a point), dates and times in ISO form,
booleans as `true`/`false`, empty cells as empty fields.

Sheet row N is written as CSV line N (empty rows as blank lines, which the reader passes
over), so that the lines of refused rows are the sheet's row numbers. A cell holding a
line break makes its row take more than one line: the rows after it are then shifted, and
`SheetCsv.shifts` records where, for the job to give the sheet's numbers back.
"""

from __future__ import annotations

import csv
import datetime
import io
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, BinaryIO

from server.api.books import IN_MEMORY_LIMIT, Book, Cell, open_book
from server.api.errors import ApiError
from server.storage import Storage

if TYPE_CHECKING:
    from server.api.upload import Upload


# Workbooks read at once by one API process (the others wait): a workbook read whole holds
# memory (see server/api/books.py), and so would many at once.
_READING = threading.BoundedSemaphore(2)


@dataclass
class SheetCsv:
    sheet: str
    rows: int = 0
    # (line, row): from this CSV line on, the sheet's row is `row + (line' - line)`.
    shifts: list[tuple[int, int]] = field(default_factory=list)


def read_sheet(storage: Storage, upload: Upload, sheet: str | None) -> None:
    """Replaces the stored workbook with the CSV of its sheet."""
    with _READING, storage.open(upload.key) as source, storage.create(upload.key) as sink:
        try:
            upload.sheet = sheet_to_csv(source, sink, sheet)
            upload.size = sink.tell()
        except BaseException:
            storage.discard(upload.key)
            raise
    storage.commit(upload.key)


def sheet_to_csv(
    source: BinaryIO, sink: BinaryIO, sheet: str | None, in_memory_limit: int = IN_MEMORY_LIMIT
) -> SheetCsv:
    """Writes the chosen sheet of the workbook in `source` to `sink` as UTF-8 CSV."""
    book = open_book(source, in_memory_limit)
    try:
        name = _choose(book, sheet)
        result = SheetCsv(name)
        _write(book.rows(name), io.TextIOWrapper(sink, "utf-8", newline=""), result)
        return result
    finally:
        book.close()


def _choose(book: Book, sheet: str | None) -> str:
    """The sheet named `sheet` (or at that 1-based position), else the first visible one."""
    if sheet is None and book.visible:
        return book.visible[0]
    if sheet in book.names:
        return sheet
    if sheet and sheet.isdigit() and 1 <= int(sheet) <= len(book.names):
        return book.names[int(sheet) - 1]
    raise ApiError(
        422,
        "unknown_sheet",
        f"the workbook has no sheet {sheet!r}" if sheet else "the workbook has no sheet to read",
        field="sheet",
        sheets=book.names,
    )


def _write(rows: Iterator[Sequence[Cell]], out: io.TextIOWrapper, result: SheetCsv) -> None:
    writer = csv.writer(out, lineterminator="\n")
    line = 1  # the CSV line the next row starts on
    span: tuple[int, int] | None = None  # the header's first column and its width
    for number, cells in enumerate(rows, start=1):
        if line != number and (not result.shifts or _shift(result) != number - line):
            result.shifts.append((line, number))
        if span is None:
            span = _span(cells)
        fields = _fields(cells, span) if span is not None else []
        if not fields:
            out.write("\n")
            line += 1
            continue
        writer.writerow(fields)
        result.rows += 1
        line += 1 + sum(value.count("\n") for value in fields)  # the reader splits on LF
    out.flush()
    out.detach()


def _shift(result: SheetCsv) -> int:
    line, row = result.shifts[-1]
    return row - line


def _span(cells: Sequence[Cell]) -> tuple[int, int] | None:
    """Where the header's cells are: the first non-empty one and how many follow it."""
    filled = [at for at, cell in enumerate(cells) if cell is not None and cell != ""]
    if not filled:
        return None
    return filled[0], filled[-1] - filled[0] + 1


def _fields(cells: Sequence[Cell], span: tuple[int, int]) -> list[str]:
    """The row's cells as text, the header's width at least; [] for an empty row."""
    first, width = span
    texts = [cell_text(cell) for cell in cells[first:]]
    while len(texts) > width and texts[-1] == "":
        texts.pop()
    if not any(texts):
        return []
    return texts + [""] * (width - len(texts))


def cell_text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        # To Excel's own precision, 15 significant digits (what the sheet shows: 0.3 for
        # 0.1 + 0.2), a whole number as its digits (1e20 too).
        shown = format(cell, ".15g")
        return format(Decimal(shown), "f") if "e" in shown and cell.is_integer() else shown
    if isinstance(cell, datetime.datetime):
        if cell.time() == datetime.time():
            return cell.date().isoformat()
        return cell.isoformat(sep=" ")
    if isinstance(cell, datetime.date | datetime.time):
        return cell.isoformat()
    if isinstance(cell, datetime.timedelta):
        return f"{cell.days} days {cell.seconds} seconds {cell.microseconds} microseconds"
    return str(cell)
