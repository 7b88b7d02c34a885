"""The header of a file, and whether a row follows it, read from the file's first bytes.

An upload is checked before it becomes a job, and a hostile file must not make that check
slow: a gigabyte on one line is refused from its first megabyte, never read to its end.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cached_property
from itertools import islice

from server.csvfile.detect import Layout, decode_head
from server.csvfile.formats import SAMPLE_ROWS
from server.csvfile.reader import RecordReader

# The first rows that decide a file's formats are read from at most this many bytes.
SAMPLE_BYTES = 256 * 1024
# A first line longer than this is not a CSV header (10,000 columns of 100-character names
# would still fit).
HEADER_LIMIT = 1 << 20


class HeadProblem(ValueError):
    """The first bytes do not start a CSV file; `code` and `line` say why and where."""

    def __init__(self, code: str, message: str, line: int) -> None:
        super().__init__(message)
        self.code = code
        self.line = line


@dataclass
class Head:
    header: list[str]
    data_offset: int  # where the first row starts: a byte offset and a line number
    data_line: int
    # What the rows are read from, when they are asked for (see `rows`).
    head: bytes = b""
    layout: Layout | None = None
    whole_file: bool = True

    @cached_property
    def rows(self) -> list[tuple[int, list[str]]]:
        """The first rows, as (line, fields), whole and readable: what decides the
        formats. Read only for a file whose formats are to be decided."""
        if self.layout is None:
            return []
        start, end = self.data_offset, self.data_offset + SAMPLE_BYTES
        whole = self.whole_file and end >= len(self.head)
        text = decode_head(self.head[start:end], self.layout.encoding, strict=False)
        # Python's own CSV reader, in C: only the values matter here, not their offsets.
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.layout.delimiter)
        rows, line = [], self.data_line
        # No field of SAMPLE_BYTES is beyond the reader's limit (see server/csvfile/reader.py).
        for fields in islice(reader, SAMPLE_ROWS):
            if fields:
                rows.append((line, fields))
            line = self.data_line + reader.line_num
        # A head cut short may end inside a quoted field: its last record is not whole.
        return rows if whole else rows[:-1]


def read_head(head: bytes, layout: Layout, whole_file: bool) -> Head:
    """`head` is the file's first HEADER_LIMIT bytes, or the whole file if shorter."""
    records = iter(RecordReader(io.BytesIO(head), layout, layout.bom_bytes, 1))
    if layout.sep_line:
        next(records)  # Excel's `sep=X`: the header is the line after it
    header = next(records, None)
    if header is not None and not whole_file and header.end_offset >= len(head):
        raise HeadProblem(
            "header_too_long",
            f"the first line is longer than {HEADER_LIMIT} bytes: it is not a CSV header",
            1,
        )
    if header is None or header.problem:
        raise HeadProblem("bad_header", "the first line is not a readable CSV header", 1)
    # Beyond the first bytes the file goes on: rows follow, even if they are refused later.
    if whole_file and next(records, None) is None:
        raise HeadProblem("no_rows", "the file has a header but no rows", 2)
    return Head(header.fields, header.end_offset, header.next_line, head, layout, whole_file)
