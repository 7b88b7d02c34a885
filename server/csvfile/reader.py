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


def block_lines(
    file: BinaryIO, terminator: bytes, max_line: int = MAX_LINE_BYTES, first: int = BLOCK_BYTES
) -> Iterator[tuple[bytes, int]]:
    """`split_lines` for one-byte line ends: whole blocks split at once (in C). The first
    block is `first` bytes: a reader that needs only a few lines reads no more."""
    rest, size = b"", max(first, 1)
    while True:
        block = file.read(size)
        size = BLOCK_BYTES
        if not block:
            if rest:
                yield rest, 0
            return
        parts = (rest + block if rest else block).split(terminator)
        rest = parts.pop()
        for part in parts:
            size = len(part) + len(terminator)
            if size > max_line:
                yield part[:max_line], size - max_line
            else:
                yield part + terminator, 0
        if len(rest) > max_line:
            yield rest[:max_line], _skip_rest(file, rest[max_line:], terminator, 1)
            rest = b""


class RecordReader:
    """Iterate the records of a file from a byte offset (a record boundary) on.

    A line without quotes (most of them) is split on the delimiter directly; a line with
    quotes goes to Python's csv module, which takes as many more lines as its quoted fields
    span, so a record means what it means to the csv module either way."""

    def __init__(
        self, file: BinaryIO, layout: Layout, offset: int, line: int, first: int = BLOCK_BYTES
    ) -> None:
        self._file = file
        self._layout = layout
        self.offset = offset
        self.next_line = line
        self._first_read = first
        self._pending: list[str] = []
        self._problem: str | None = None
        self._eof = False
        self._first: str | None = None
        self._source: Iterator[tuple[bytes, int]] = iter(())

    def _chunks(self) -> Iterator[tuple[bytes, int]]:
        self._file.seek(self.offset)
        terminator, unit = encoded_terminator(self._layout)
        if unit == 1:
            return block_lines(self._file, terminator, first=self._first_read)
        return split_lines(self._file, terminator, unit)

    def _text(self, chunk: bytes, cut: int) -> str:
        """One line's text, counted in the reader's position."""
        self.offset += len(chunk) + cut
        self.next_line += 1
        try:
            line = chunk.decode(self._layout.encoding)
        except UnicodeDecodeError:
            line = chunk.decode(self._layout.encoding, "replace")
            self._problem = self._problem or "encoding"
        if cut:
            line = line[:RAW_PREVIEW_CHARS]
            self._problem = "line_too_long"
        self._pending.append(line)
        return line

    def __iter__(self) -> Iterator[Record]:
        self._source = self._chunks()
        rows = csv.reader(self._quoted(), delimiter=self._layout.delimiter)
        split = self._layout.split
        for chunk, cut in self._source:
            line, start = self.next_line, self.offset
            text = self._text(chunk, cut)
            body = text[:-1] if text.endswith(split) else text
            if split == "\n" and body.endswith("\r"):
                body = body[:-1]
            if cut or '"' in body or "\r" in body or "\n" in body or "\x00" in body:
                self._first = text
                fields = self._parse(rows)
            else:
                fields = body.split(self._layout.delimiter) if body else []
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

    def _quoted(self) -> Iterator[str]:
        """The lines the csv module reads: the first line of a record that needs it (set by
        the loop above), then the lines its quoted fields go on in, as it asks for them."""
        while True:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
                continue
            chunk = next(self._source, None)
            if chunk is None:
                self._eof = True
                return
            yield self._text(*chunk)

    def _parse(self, rows: Iterator[list[str]]) -> list[str]:
        try:
            return next(rows)
        except StopIteration:
            return []
        except csv.Error:
            self._problem = "malformed"
            return []

    def _take_problem(self) -> str | None:
        problem, self._problem = self._problem, None
        if problem is None and self._eof:
            return "unterminated_quote"
        return problem


def read_record(file: BinaryIO, layout: Layout, offset: int, line: int) -> Record | None:
    """The first record at or after a byte offset, or None at the end of the file."""
    return next(iter(RecordReader(file, layout, offset, line)), None)
