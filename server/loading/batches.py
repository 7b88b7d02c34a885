"""Batches of a file, from a record boundary on: runs of plain lines, and careful records.

The scanner reads the file a block at a time. The longest run of lines at the start of a
block that the file's row pattern matches goes to COPY as it is (a `Run`). The records
after it, up to the end of the block, go the careful way: parsed by the record reader,
each value converted and checked, one COPY text line or one refused row each. Then the
next block starts fast again, so one odd record slows down at most one block.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from server.csvfile.convert import Pending, Problem, RowConverter
from server.csvfile.detect import Layout
from server.csvfile.reader import Record, RecordReader, encoded_terminator

# One pattern match per block holds the GIL for its whole length: kept short so that the
# copier thread gets the GIL back soon. One odd line sends at most the rest of a block the
# careful way.
BLOCK_BYTES = 64 * 1024
# A batch also ends once it spans this much of the file: rows of megabytes each must not
# make BATCH_ROWS of them (times the batches in flight) a worker's whole memory.
BATCH_BYTES = 8 * 1024 * 1024
# A batch also ends once it holds this many records read the careful way: each is a few
# Python objects, where a run's rows are only bytes.
CAREFUL_BATCH_ROWS = 10_000
# The first batches are small and each next one twice as big, up to BATCH_ROWS: COPY starts
# as soon as a few thousand rows are read, not once a whole batch is.
FIRST_BATCH_ROWS = 5_000

READER_PROBLEMS = {
    "encoding": "holds bytes that are not valid in the file's encoding",
    "line_too_long": "the line is too long to be a CSV record",
    "malformed": "is not a well-formed CSV record (stray quote or NUL byte)",
    "unterminated_quote": "the file ends inside a quoted field",
}


@dataclass(frozen=True)
class Run:
    """Consecutive one-line records, all valid, as they are in the file."""

    raw: bytes
    first_line: int
    start_offset: int
    rows: int


@dataclass
class Batch:
    start_offset: int
    end_offset: int
    next_line: int
    runs: list[Run] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    refused: list[tuple[Record, list[Problem]]] = field(default_factory=list)
    # Records with values that PostgreSQL must judge before they are lines or refusals.
    pending: list[tuple[Record, Pending]] = field(default_factory=list)
    rows: int = 0
    # The runs as COPY gets them, made by the reading thread (see staging.Stage.prepare).
    run_data: bytes = b""
    # Records read the careful way, one by one (set once the batch is staged).
    careful: int = 0
    waiting: list[Record] = field(default_factory=list)
    records_read: int = 0

    def add_run(self, run: Run) -> None:
        self.runs.append(run)
        self.rows += run.rows
        self.end_offset = run.start_offset + len(run.raw)
        self.next_line = run.first_line + run.rows

    def full(self, rows: int) -> bool:
        return (
            self.rows >= rows
            or self.records_read >= CAREFUL_BATCH_ROWS
            or self.end_offset - self.start_offset >= BATCH_BYTES
        )

    def add_record(self, record: Record) -> None:
        """A record read the careful way; `convert` makes it a line or a refusal."""
        if record.problem:
            problem = Problem(None, record.problem, READER_PROBLEMS[record.problem])
            self.refused.append((record, [problem]))
        else:
            self.waiting.append(record)
        self.rows += 1
        self.records_read += 1
        self.end_offset, self.next_line = record.end_offset, record.next_line

    def convert(self, converter: RowConverter) -> Batch:
        """The records read the careful way, converted all at once."""
        for record, result in zip(self.waiting, converter.copy_lines(self.waiting), strict=True):
            if isinstance(result, str):
                self.lines.append(result)
                self.records.append(record)
            elif isinstance(result, Pending):
                self.pending.append((record, result))
            else:
                self.refused.append((record, result))
        self.waiting = []
        return self


def careful_records(
    file: BinaryIO, layout: Layout, offset: int, line: int, until: int
) -> Iterator[Record]:
    """The records that start before `until`, and always the first one, if any is left."""
    first = True
    for record in RecordReader(file, layout, offset, line, first=until - offset + 1):
        if not first and record.start_offset >= until:
            return
        first = False
        yield record


def careful_batch(run: Run, layout: Layout, converter: RowConverter) -> Batch:
    """A run read again the careful way, record by record, from the bytes it holds."""
    batch = Batch(run.start_offset, run.start_offset, run.first_line)
    for record in RecordReader(io.BytesIO(run.raw), layout, 0, run.first_line):
        record.start_offset += run.start_offset
        record.end_offset += run.start_offset
        batch.add_record(record)
    return batch.convert(converter)


class Scanner:
    def __init__(
        self,
        file: BinaryIO,
        layout: Layout,
        converter: RowConverter,
        pattern: re.Pattern[bytes] | None,
        batch_rows: int,
    ) -> None:
        self.file, self.layout, self.converter = file, layout, converter
        self.pattern = pattern
        self.batch_rows = batch_rows
        self.limit = min(FIRST_BATCH_ROWS, batch_rows)
        self.terminator, _ = encoded_terminator(layout)

    def _after(self, batch: Batch) -> Batch:
        """The next batch, empty, and allowed twice as many rows as the last one."""
        self.limit = min(self.limit * 2, self.batch_rows)
        return Batch(batch.end_offset, batch.end_offset, batch.next_line)

    def batches(self, offset: int, line: int) -> Iterator[Batch]:
        if self.pattern is None:
            yield from self._careful_batches(offset, line)
            return
        batch = Batch(offset, offset, line)
        while True:
            self.file.seek(batch.end_offset)
            block = self.file.read(BLOCK_BYTES)
            if not block:
                break
            start, last = batch.end_offset, block.rfind(self.terminator)
            end = start + last + len(self.terminator) if last >= 0 else start
            run = self._run(block[: end - start], start, batch.next_line, self.limit - batch.rows)
            if run is not None:
                batch.add_run(run)
            # A run that filled the batch leaves the rest of the block to the next batch,
            # which may take it fast again.
            if not batch.full(self.limit) and (batch.end_offset < end or last < 0):
                self._careful(batch, end)
            if batch.full(self.limit):
                yield batch.convert(self.converter)
                batch = self._after(batch)
        if batch.rows or batch.end_offset != batch.start_offset:
            yield batch.convert(self.converter)

    def _careful_batches(self, offset: int, line: int) -> Iterator[Batch]:
        """Without a pattern, every record the careful way: one reader, end to end."""
        batch = Batch(offset, offset, line)
        for record in RecordReader(self.file, self.layout, offset, line):
            batch.add_record(record)
            if batch.full(self.limit):
                yield batch.convert(self.converter)
                batch = self._after(batch)
        # What is left after the last record is blank lines: the batch covers them too.
        batch.end_offset = self.file.seek(0, 2)
        if batch.rows or batch.end_offset != batch.start_offset:
            yield batch.convert(self.converter)

    def _run(self, region: bytes, offset: int, line: int, room: int) -> Run | None:
        """The valid lines at the start of `region`, at most `room` of them."""
        if self.pattern is None or not region:
            return None
        raw = region[: self.pattern.match(region).end()]  # type: ignore[union-attr]
        raw = self._decodable(raw)
        rows = raw.count(self.terminator)
        if rows > room:
            raw, rows = raw[: self._end_of_line(raw, room)], room
        return Run(raw, line, offset, rows) if raw else None

    def _end_of_line(self, raw: bytes, count: int) -> int:
        """Where the `count`-th line of `raw` ends."""
        end = 0
        for _ in range(count):
            end = raw.index(self.terminator, end) + len(self.terminator)
        return end

    def _decodable(self, raw: bytes) -> bytes:
        """The lines of `raw` before the first one with bytes the encoding cannot read."""
        try:
            raw.decode(self.layout.encoding)
        except UnicodeDecodeError as error:
            cut = raw.rfind(self.terminator, 0, error.start)
            return raw[: cut + len(self.terminator)] if cut >= 0 else b""
        return raw

    def _careful(self, batch: Batch, until: int) -> None:
        records = careful_records(self.file, self.layout, batch.end_offset, batch.next_line, until)
        consumed = False
        for record in records:
            batch.add_record(record)
            consumed = True
            if batch.full(self.limit):
                break
        if not consumed:  # only blank lines were left: the file is done
            self.file.seek(0, 2)
            batch.end_offset = self.file.tell()
