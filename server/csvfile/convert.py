"""Values checked against a column's type and written in COPY's text format.

Each column gets one converter, compiled once from its type: a function from the CSV text
to the text COPY expects, raising Refusal (with a code and a message a person can act on)
when the value cannot go into the column. The database checks again on COPY; these
checks exist so that one bad value becomes one refused row, not a failed batch.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import NoReturn

from server.targets import Column

Converter = Callable[[str], str]

NULL = "\\N"
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_DATE = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*", re.ASCII)
_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}
_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_WIDE = Context(prec=1000)
_FLOAT4_MAX = 3.4028235e38


class Refusal(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Problem:
    column: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"column": self.column, "code": self.code, "message": self.message}


def escape(value: str) -> str:
    if "\x00" in value:
        raise Refusal("nul_character", "holds a NUL character, which PostgreSQL cannot store")
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def integer(bits: int) -> Converter:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(value: str) -> str:
        if not _INTEGER.fullmatch(value):
            raise Refusal("not_integer", f"{value!r} is not a whole number")
        number = int(value)
        if not low <= number <= high:
            raise Refusal("out_of_range", f"{number} is outside {low}..{high}")
        return str(number)

    return convert


def numeric(precision: int | None, scale: int | None) -> Converter:
    step = Decimal(1).scaleb(-(scale or 0))
    limit = Decimal(10) ** ((precision or 0) - (scale or 0))

    def convert(value: str) -> str:
        number = _decimal(value)
        if precision is None:
            return str(number)
        if not number.is_finite():
            raise Refusal("out_of_range", f"{value!r} is not a finite number")
        if abs(number.quantize(step, context=_WIDE)) >= limit:
            raise Refusal(
                "out_of_range",
                f"{value.strip()} does not fit numeric({precision},"
                f"{scale}): at most {precision - (scale or 0)} digits before the point",
            )
        return str(number)

    return convert


def _decimal(value: str) -> Decimal:
    try:
        if "_" in value:
            raise InvalidOperation
        return Decimal(value.strip())
    except InvalidOperation:
        raise Refusal("not_number", f"{value!r} is not a number") from None


def floating(largest: float) -> Converter:
    def convert(value: str) -> str:
        try:
            if "_" in value:
                raise ValueError
            number = float(value)
        except ValueError:
            raise Refusal("not_number", f"{value!r} is not a number") from None
        if (math.isfinite(number) and abs(number) > largest) or (
            math.isinf(number) and "inf" not in value.lower()
        ):
            raise Refusal("out_of_range", f"{value.strip()} is out of range for this column")
        return value.strip()

    return convert


def boolean(value: str) -> str:
    word = value.strip().lower()
    if word in _TRUE:
        return "t"
    if word in _FALSE:
        return "f"
    raise Refusal("not_boolean", f"{value!r} is not a boolean (true/false, yes/no, 1/0)")


def iso_date(value: str) -> str:
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise Refusal("not_date", f"{value!r} is not a date (YYYY-MM-DD)") from None


def timestamp(with_zone: bool) -> Converter:
    def convert(value: str) -> str:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Refusal("not_timestamp", f"{value!r} is not an ISO 8601 timestamp") from None
        if moment.tzinfo is None:
            # Read as UTC rather than the server's zone, so a file means the same everywhere.
            return moment.isoformat() + ("+00:00" if with_zone else "")
        if not with_zone:
            raise Refusal(
                "unexpected_time_zone",
                f"{value!r} has a time zone offset, but the column has no time zone",
            )
        return moment.isoformat()

    return convert


def uuid_value(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise Refusal("not_uuid", f"{value!r} is not a UUID") from None


def _no_constant(name: str) -> object:
    raise ValueError(name)


def json_value(value: str) -> str:
    try:
        json.loads(value, parse_constant=_no_constant)
    except ValueError:
        raise Refusal("not_json", f"{value[:80]!r} is not valid JSON") from None
    return escape(value)


def text_of(length: int | None, padded: bool) -> Converter:
    if length is None:
        return escape

    def convert(value: str) -> str:
        size = len(value.rstrip(" ") if padded else value)
        if size > length:
            raise Refusal("too_long", f"{size} characters, the column holds at most {length}")
        return escape(value)

    return convert


def one_of(labels: tuple[str, ...]) -> Converter:
    allowed = frozenset(labels)

    def convert(value: str) -> str:
        if value not in allowed:
            raise Refusal("not_allowed", f"{value!r} is not one of {', '.join(labels)}")
        return escape(value)

    return convert


def converter_for(column: Column) -> Converter:
    if column.labels:
        return one_of(column.labels)
    if column.type in _INT_BITS:
        return integer(_INT_BITS[column.type])
    simple: dict[str, Converter] = {
        "numeric": numeric(column.precision, column.scale),
        "float4": floating(_FLOAT4_MAX),
        "float8": floating(math.inf),
        "bool": boolean,
        "date": iso_date,
        "timestamp": timestamp(with_zone=False),
        "timestamptz": timestamp(with_zone=True),
        "uuid": uuid_value,
        "json": json_value,
        "jsonb": json_value,
        "varchar": text_of(column.length, padded=False),
        "bpchar": text_of(column.length, padded=True),
    }
    # Any other type goes through as text and PostgreSQL judges it on COPY.
    return simple.get(column.type, escape)


class RowConverter:
    """Turns the fields of one record into one line of COPY text, or into its problems."""

    def __init__(
        self, columns: list[Column | None], null_markers: Iterable[str], positions: bool = True
    ) -> None:
        self.columns = columns
        self.width = len(columns)
        self.positions = positions
        self.nulls = frozenset(null_markers)
        self.plan = [
            (index, column.name, converter_for(column), column.nullable)
            for index, column in enumerate(columns)
            if column is not None
        ]

    def copy_line(self, fields: list[str], line: int, offset: int) -> str | list[Problem]:
        """One line of COPY text, ending with the record's line number and byte offset
        (unless the converter was made without positions)."""
        if len(fields) != self.width:
            return [
                Problem(None, "field_count", f"expected {self.width} fields, found {len(fields)}")
            ]
        out = []
        nulls = self.nulls
        try:
            for index, _, convert, nullable in self.plan:
                value = fields[index]
                if value not in nulls:
                    out.append(convert(value))
                elif nullable:
                    out.append(NULL)
                else:
                    _not_null()
        except Refusal:
            return self.problems(fields)
        if self.positions:
            out.append(str(line))
            out.append(str(offset))
        return "\t".join(out) + "\n"

    def problems(self, fields: list[str]) -> list[Problem]:
        """Every problem of a record, for the person who will fix it."""
        found = []
        for index, name, convert, nullable in self.plan:
            value = fields[index]
            try:
                if value in self.nulls:
                    if not nullable:
                        _not_null()
                else:
                    convert(value)
            except Refusal as refusal:
                found.append(Problem(name, refusal.code, refusal.message))
        return found


def _not_null() -> NoReturn:
    raise Refusal("not_null", "is empty, but the column does not allow empty values")
