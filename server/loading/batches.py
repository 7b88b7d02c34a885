"""Group records into batches: COPY lines for the good rows, problems for the others."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from server.csvfile.convert import Problem, RowConverter
from server.csvfile.reader import Record

READER_PROBLEMS = {
    "encoding": "holds bytes that are not valid in the file's encoding",
    "line_too_long": "the line is too long to be a CSV record",
    "malformed": "is not a well-formed CSV record (stray quote or NUL byte)",
    "unterminated_quote": "the file ends inside a quoted field",
}


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    refused: list[tuple[Record, list[Problem]]] = field(default_factory=list)
    end_offset: int = 0
    next_line: int = 0

    @property
    def size(self) -> int:
        return len(self.lines) + len(self.refused)


def batches(records: Iterable[Record], converter: RowConverter, size: int) -> Iterator[Batch]:
    batch = Batch()
    for record in records:
        if record.problem:
            message = READER_PROBLEMS[record.problem]
            batch.refused.append((record, [Problem(None, record.problem, message)]))
        else:
            result = converter.copy_line(record.fields, record.line, record.start_offset)
            if isinstance(result, str):
                batch.lines.append(result)
                batch.records.append(record)
            else:
                batch.refused.append((record, result))
        batch.end_offset, batch.next_line = record.end_offset, record.next_line
        if batch.size >= size:
            yield batch
            batch = Batch()
    if batch.size:
        yield batch
