"""Records of a CSV file with their line numbers and byte offsets.

Every record knows the byte offset where the next one starts, so a reader can be opened
again at any record boundary (a checkpoint) and go on as if it had never stopped.
Problems with one record (bytes that do not decode, an over-long line, a quote left open
at the end of the file) are reported on that record; the reader itself never stops early.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from server.csvfile.detect import Layout

BLOCK_BYTES = 1 << 20
# A line longer than this is refused, not held in memory: a hostile file can be one line.
MAX_LINE_BYTES = 16 << 20
RAW_PREVIEW_CHARS = 1000

csv.field_size_limit(MAX_LINE_BYTES)


@dataclass(slots=True)
class Record:
    line: int
    fields: list[str]
    lines: list[str]
    start_offset: int
    end_offset: int
    next_line: int
    problem: str | None = None

    @property
    def raw(self) -> str:
        """The record's text as it was in the file, without its final line end."""
        text = "".join(self.lines)
        if text.endswith("\r\n"):
            return text[:-2]
        return text[:-1] if text.endswith(("\n", "\r")) else text


def encoded_terminator(layout: Layout) -> tuple[bytes, int]:
    """What lines are split on, as bytes, and the code unit size a match must align to."""
    encoded = layout.split.encode(layout.encoding)
    return encoded, len(encoded)


def split_lines(
    file: BinaryIO, terminator: bytes, unit: int, max_line: int = MAX_LINE_BYTES
) -> Iterator[tuple[bytes, int]]:
    """Yield (line bytes with their terminator, bytes cut off past max_line)."""
    buf, start = b"", 0
    while True:
        pos = _find_aligned(buf, terminator, start, unit)
        if pos >= 0:
            end = pos + len(terminator)
            size = min(end - start, max_line)
            yield buf[start : start + size], end - start - size
            start = end
            continue
        if len(buf) - start > max_line:
            yield (
                buf[start : start + max_line],
                _skip_rest(file, buf[start + max_line :], terminator, unit),
            )
            buf, start = b"", 0
            continue
        block = file.read(BLOCK_BYTES)
        if not block:
            if start < len(buf):
                yield buf[start:], 0
            return
        buf, start = buf[start:] + block, 0


def _find_aligned(buf: bytes, terminator: bytes, start: int, unit: int) -> int:
    pos = buf.find(terminator, start)
    while pos >= 0 and (pos - start) % unit:
        pos = buf.find(terminator, pos + 1)
    return pos


def _skip_rest(file: BinaryIO, tail: bytes, terminator: bytes, unit: int) -> int:
    """Consume an over-long line up to and including its terminator; count the bytes."""
    skipped = 0
    while True:
        pos = _find_aligned(tail, terminator, 0, unit)
        if pos >= 0:
            # Bytes after the terminator belong to the next line: put them back.
            file.seek(-(len(tail) - pos - len(terminator)), 1)
            return skipped + pos + len(terminator)
        skipped += len(tail) - (len(tail) % unit)
        keep = tail[len(tail) - (len(tail) % unit) :]
        block = file.read(BLOCK_BYTES)
        if not block:
            return skipped + len(keep)
        tail = keep + block


class RecordReader:
    """Iterate the records of a file from a byte offset (a record boundary) on."""

    def __init__(self, file: BinaryIO, layout: Layout, offset: int, line: int) -> None:
        self._file = file
        self._layout = layout
        self.offset = offset
        self.next_line = line
        self._pending: list[str] = []
        self._problem: str | None = None
        self._eof = False

    def _lines(self) -> Iterator[str]:
        self._file.seek(self.offset)
        terminator, unit = encoded_terminator(self._layout)
        encoding = self._layout.encoding
        for chunk, cut in split_lines(self._file, terminator, unit):
            self.offset += len(chunk) + cut
            self.next_line += 1
            try:
                line = chunk.decode(encoding)
            except UnicodeDecodeError:
                line = chunk.decode(encoding, "replace")
                self._problem = self._problem or "encoding"
            if cut:
                line = line[:RAW_PREVIEW_CHARS]
                self._problem = "line_too_long"
            self._pending.append(line)
            yield line
        self._eof = True

    def __iter__(self) -> Iterator[Record]:
        rows = csv.reader(self._lines(), delimiter=self._layout.delimiter)
        while True:
            line, start = self.next_line, self.offset
            try:
                fields = next(rows)
            except StopIteration:
                return
            except csv.Error:
                fields, self._problem = [], "malformed"
            record = Record(
                line,
                fields,
                self._pending,
                start,
                self.offset,
                self.next_line,
                self._take_problem(),
            )
            self._pending = []
            if record.fields or record.problem:
                yield record

    def _take_problem(self) -> str | None:
        problem, self._problem = self._problem, None
        if problem is None and self._eof:
            return "unterminated_quote"
        return problem


def read_record(file: BinaryIO, layout: Layout, offset: int, line: int) -> Record | None:
    """The first record at or after a byte offset, or None at the end of the file."""
    return next(iter(RecordReader(file, layout, offset, line)), None)
