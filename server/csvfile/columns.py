"""The careful path, a column at a time: all of a batch's values of one column checked by one
regular expression (one C call), the per-value converter only where that fails.

Most records go the careful way for one odd value, or for a shape the row pattern does not
take (a quoted line break, a field that is not the column's type for once): their other
values are plain. A column whose values all match its plain form (or are null markers)
needs nothing more; a value that does not match is converted alone, and a record with a
value that is refused or must be asked goes back to `RowConverter.copy_line`, which says
everything about it. What a record becomes does not depend on which way it went.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from server.csvfile.convert import NULL, Pending, Problem, RowConverter
from server.csvfile.formats import Formats
from server.csvfile.pattern import value_pattern
from server.csvfile.reader import Record
from server.db import copy_text
from server.targets import Column

Check = Callable[[list[str]], bool]
Result = str | list[Problem] | Pending
_SPECIAL = re.compile(r"[\\\t\n\r]")
_TEXT = frozenset({"text", "varchar", "bpchar"})


class BatchConverter(RowConverter):
    def __init__(
        self,
        columns: list[Column | None],
        null_markers: Iterable[str],
        positions: bool = True,
        keys: Iterable[str] = (),
        formats: Formats | None = None,
    ) -> None:
        super().__init__(columns, null_markers, positions, keys, formats)
        self.checks = [self._check(column) for _, column, _ in self.plan]

    def _check(self, column: Column) -> Check | None:
        """How to tell at once that every value of a column goes to COPY as written."""
        if column.checked:
            return None
        if column.type in _TEXT and not column.labels:
            return _text_check(column.length)
        plain = value_pattern(column, self.formats)
        if plain is None:
            return None
        nulls = [re.escape(marker) for marker in self.nulls] if column.nullable else []
        one = "|".join([f"(?:{plain.decode()})", *nulls])
        whole = re.compile(rf"(?:{one})(?:\n(?:{one}))*")

        def check(values: list[str]) -> bool:
            joined = "\n".join(values)
            # A value with a line break of its own would pass for two values.
            return joined.count("\n") == len(values) - 1 and whole.fullmatch(joined) is not None

        return check

    def copy_lines(self, records: Sequence[Record]) -> list[Result]:
        """What each record becomes, as `copy_line` would say, a column at a time."""
        fields = [record.fields for record in records]
        good = [n for n, row in enumerate(fields) if len(row) == self.width]
        rows = [fields[n] for n in good] if len(good) < len(fields) else fields
        odd: set[int] = set()  # positions in `rows` that must go one by one
        columns = [self._column(position, rows, odd) for position in range(len(self.plan))]
        results: list[Result | None] = [None] * len(records)
        for at, n in enumerate(good):
            if at not in odd:
                results[n] = self._joined([column[at] for column in columns], records[n])
        for n, record in enumerate(records):
            if results[n] is None:
                results[n] = self.copy_line(
                    record.fields,
                    record.line,
                    record.start_offset,
                    record.end_offset - record.start_offset,
                )
        return [result for result in results if result is not None]

    def _column(self, position: int, rows: list[list[str]], odd: set[int]) -> list[str]:
        """A column's COPY text for each row; rows with a value it cannot take as it is
        join `odd`."""
        index, column, convert = self.plan[position]
        values = [row[index] for row in rows]
        check = self.checks[position]
        nulls = not self.nulls.isdisjoint(values)
        if check is not None and (column.nullable or not nulls) and check(values):
            escaped = values
            if column.type in _TEXT and _SPECIAL.search("\x1f".join(values)):
                escaped = [copy_text(value) for value in values]
            if nulls:  # the markers as they were in the file, not as escaped
                escaped = [
                    NULL if v in self.nulls else e for v, e in zip(values, escaped, strict=True)
                ]
            return escaped
        out = []
        for n, value in enumerate(values):
            try:
                if value in self.nulls:
                    if not column.nullable:
                        raise ValueError(value)
                    out.append(NULL)
                else:
                    out.append(convert(value))
            except Exception:  # noqa: BLE001 - refused, asked or odd: copy_line looks closer
                odd.add(n)
                out.append("")
        return out

    def _joined(self, values: list[str], record: Record) -> str:
        if self.positions:
            length = record.end_offset - record.start_offset
            values += (str(record.line), str(record.start_offset), str(length))
        return "\t".join(values) + "\n"


def _text_check(length: int | None) -> Check:
    """Text: no NUL anywhere, and none longer than the column (spaces beyond it aside,
    which the converter decides)."""

    def check(values: list[str]) -> bool:
        if length is not None and max(map(len, values), default=0) > length:
            return False
        return "\x00" not in "".join(values)

    return check
