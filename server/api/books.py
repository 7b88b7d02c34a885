"""Workbooks opened for reading, by one of two readers behind one small interface.

python-calamine (Rust) reads a sheet whole into memory and is fast: about ten times
openpyxl. openpyxl in read-only mode streams a sheet's XML and holds a row at a time. An
xlsx whose parts unpack to at most `in_memory_limit` bytes is read by calamine; a larger
one is streamed by openpyxl, so that a sheet of a million rows costs time, not memory.
calamine also reads what openpyxl cannot: OpenDocument (.ods), Excel 97-2003 (.xls, at
most 65,536 rows by its format) and binary xlsx (.xlsb), each whole.

Both give a sheet's rows from its first row on, each a sequence of cells (None or "" for
an empty one), so that the n-th row is the sheet's row n.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, Protocol

import openpyxl
import python_calamine
from openpyxl.utils.exceptions import InvalidFileException

from server.api.errors import ApiError

# What an xlsx may unpack to and still be read whole: a sheet of some 200,000 rows of
# ten columns, which calamine holds in about 100 MB.
IN_MEMORY_LIMIT = 64 * 1024 * 1024

Cell = Any  # None, str, int, float, bool, datetime, date, time or timedelta


class Book(Protocol):
    names: list[str]  # the worksheets, in the workbook's order
    visible: list[str]  # those not hidden

    def rows(self, name: str) -> Iterator[Sequence[Cell]]: ...
    def close(self) -> None: ...


class _Streamed:
    def __init__(self, source: BinaryIO) -> None:
        self.book = openpyxl.load_workbook(source, read_only=True, data_only=True)
        sheets = self.book.worksheets
        self.names = [sheet.title for sheet in sheets]
        self.visible = [sheet.title for sheet in sheets if sheet.sheet_state == "visible"]

    def rows(self, name: str) -> Iterator[Sequence[Cell]]:
        return self.book[name].iter_rows(values_only=True)

    def close(self) -> None:
        self.book.close()


class _Loaded:
    def __init__(self, source: BinaryIO) -> None:
        self.book = python_calamine.CalamineWorkbook.from_filelike(source)
        sheets = [
            each
            for each in self.book.sheets_metadata
            if each.typ == python_calamine.SheetTypeEnum.WorkSheet
        ]
        self.names = [each.name for each in sheets]
        self.visible = [
            each.name for each in sheets if each.visible == python_calamine.SheetVisibleEnum.Visible
        ]

    def rows(self, name: str) -> Iterator[Sequence[Cell]]:
        # From the sheet's first row, whatever row its first value is on.
        return self.book.get_sheet_by_name(name).iter_rows()

    def close(self) -> None:
        self.book.close()


def open_book(source: BinaryIO, in_memory_limit: int = IN_MEMORY_LIMIT) -> Book:
    try:
        if _unpacked_size(source) > in_memory_limit:
            return _Streamed(source)
        return _Loaded(source)
    except (
        InvalidFileException,
        zipfile.BadZipFile,
        KeyError,
        OSError,
        python_calamine.CalamineError,
        python_calamine.ZipError,
        python_calamine.XmlError,
    ) as error:
        raise ApiError(
            415,
            "unsupported_spreadsheet",
            f"the file is not a workbook that can be read ({error}); save it as .xlsx or as CSV",
        ) from None


def _unpacked_size(source: BinaryIO) -> int:
    """What an xlsx unpacks to; 0 for any other workbook (they are read whole)."""
    size = 0
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            if "xl/workbook.xml" in archive.namelist():
                size = sum(entry.file_size for entry in archive.infolist())
    source.seek(0)
    return size
