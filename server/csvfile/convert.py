"""Values judged as PostgreSQL judges them, and written in COPY's text format.

PostgreSQL is the judge of every value. Each column gets one converter, compiled once from
its type, that decides quickly what it can decide for certain:

- a value in a plain form that the type's input function reads exactly as written (`42`,
  `2024-02-29`, `12.50` for numeric(12,2)) is accepted and goes to COPY as it is;
- a value PostgreSQL is certain to refuse (an integer of 5,000 digits, a text longer than
  its varchar, a label that is not in the enum) raises `Refusal`, with a code and a message
  a person can act on;
- anything else (` 42`, `1e3`, `2024-01-02T03:04:05.1234567`, JSON 100,000 levels deep)
  raises `Ask`: PostgreSQL's own input function decides it (server/loading/judge.py), and
  its words become the refusal if it refuses.

A converter never rewrites a value PostgreSQL would read in its own way, so a value lands
with PostgreSQL's meaning whichever way it went. The choices that differ from PostgreSQL on
purpose are `DELIBERATE` below (the README lists them too). Nothing a converter is given,
however long, deep or odd, makes it raise anything but `Refusal` or `Ask`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import NoReturn

from server.csvfile.formats import DATE_TYPES, Formats, local_reader
from server.csvfile.reader import Record
from server.db import COPY_NULL, copy_text
from server.targets import Column

Converter = Callable[[str], str]

NULL = COPY_NULL
_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}
# Digits that always fit the type, whatever they are.
_SAFE_DIGITS = {"int2": 4, "int4": 9, "int8": 18}
_INTEGER = re.compile(r"[+-]?([0-9]+)", re.ASCII)
_DECIMAL = re.compile(r"[+-]?([0-9]*)(?:\.([0-9]*))?", re.ASCII)
_FLOAT = re.compile(
    r"-?(?:[0-9]{1,15}(?:\.[0-9]{1,15})?|\.[0-9]{1,15})(?:[eE][+-]?([0-9]{1,3}))?", re.ASCII
)
_WORDS = frozenset({"true", "t", "yes", "y", "on", "1", "false", "f", "no", "n", "off", "0"})
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_ISO_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_ISO_ZONE = r"(?:Z|[+-](?:0[0-9]|1[0-4])(?::?[0-5][0-9])?)"
_TIMESTAMP = re.compile(rf"([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})[T ]{_ISO_TIME}", re.ASCII)
_TIMESTAMP_ZONED = re.compile(
    rf"([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})[T ]{_ISO_TIME}\s*{_ISO_ZONE}", re.ASCII
)
_TIME = re.compile(_ISO_TIME, re.ASCII)
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", re.ASCII)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}(?:/(?:3[0-2]|[12][0-9]|[0-9]))?", re.ASCII)
# Where a day-month order is a server setting (DateStyle), not a fact of the file.
_DAY_MONTH_ORDER = re.compile(r"\s*[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{1,4}(?![0-9])", re.ASCII)
# Words whose date is the moment the import runs, not a fact of the file.
_RELATIVE = re.compile(r"\s*(now|today|tomorrow|yesterday)\s*", re.IGNORECASE)
# Numbers too long to be values; PostgreSQL refuses what it cannot hold anyway.
_JSON_BIG_NUMBER = re.compile(r"[0-9]{400}|[eE][+-]?[0-9]{4}", re.ASCII)

# The code of a value its column's type cannot read, as PostgreSQL's refusal or ours.
NOT_A = {
    "int2": "not_integer",
    "int4": "not_integer",
    "int8": "not_integer",
    "numeric": "not_number",
    "float4": "not_number",
    "float8": "not_number",
    "bool": "not_boolean",
    "date": "not_date",
    "timestamp": "not_timestamp",
    "timestamptz": "not_timestamp",
    "time": "not_time",
    "uuid": "not_uuid",
    "json": "not_json",
    "jsonb": "not_json",
}

# Where this service refuses what PostgreSQL would take, and why.
DELIBERATE = {
    "unexpected_time_zone": "a timestamp with an offset going into a column without a time "
    "zone: PostgreSQL would drop the offset and keep the wall-clock time",
    "ambiguous_date": "a day and month written as numbers in an order PostgreSQL reads from "
    "its DateStyle setting (01/02/2024): the file's meaning must not depend on a server",
    "relative_date": "now, today, tomorrow, yesterday: the value would be the moment of the "
    "import, not anything in the file",
}


class Refusal(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Ask(Exception):
    """The converter cannot tell: PostgreSQL's input function must judge `text`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


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
    return copy_text(value)


def integer(kind: str) -> Converter:
    bits, safe = _INT_BITS[kind], _SAFE_DIGITS[kind]
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(value: str) -> str:
        found = _INTEGER.fullmatch(value)
        if found is None:
            raise Ask(value)
        digits = found.group(1)
        if len(digits) <= safe:
            return value
        if len(digits.lstrip("0")) > 20 or not low <= int(value) <= high:
            raise Refusal("out_of_range", f"{_short(value)} is outside {low}..{high}")
        return value

    return convert


def numeric(precision: int | None, scale: int | None) -> Converter:
    """Plain decimals that fit as written; anything else (an exponent, digits to round,
    NaN) is PostgreSQL's to read."""
    whole = None if precision is None else precision - (scale or 0)
    places = 16383 if precision is None else scale or 0

    def convert(value: str) -> str:
        found = _DECIMAL.fullmatch(value)
        if found is None or not (found.group(1) or found.group(2)):
            raise Ask(value)
        integer_part, fraction = found.group(1).lstrip("0"), found.group(2) or ""
        if whole is None and len(integer_part) <= 1000 and len(fraction) <= places:
            return value
        if whole is not None and len(integer_part) <= whole and len(fraction) <= places:
            return value
        raise Ask(value)

    return convert


def floating(kind: str) -> Converter:
    """Plain numbers of at most 15 digits before and after the point, with an exponent small
    enough to stay far from the type's limits (both overflow and underflow are refused)."""
    limit = 290 if kind == "float8" else 20

    def convert(value: str) -> str:
        found = _FLOAT.fullmatch(value)
        if found is None or (found.group(1) is not None and int(found.group(1)) > limit):
            raise Ask(value)
        return value

    return convert


def boolean(value: str) -> str:
    if value.lower() in _WORDS:
        return value
    raise Ask(value)


def _calendar(year: str, month: str, day: str) -> bool:
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def _not_a_fact(value: str, kind: str) -> None:
    """The deliberate refusals of dates and timestamps."""
    if _DAY_MONTH_ORDER.match(value):
        raise Refusal(
            "ambiguous_date",
            f"{_short(value)}: is it day/month or month/day? Write dates as YYYY-MM-DD",
        )
    if _RELATIVE.fullmatch(value):
        raise Refusal(
            "relative_date", f"{_short(value)} is not a {kind}: it names the moment of import"
        )


def iso_date(value: str) -> str:
    found = _ISO_DATE.fullmatch(value)
    if found is not None and _calendar(*found.groups()):
        return value
    _not_a_fact(value, "date")
    raise Ask(value)


def timestamp(with_zone: bool) -> Converter:
    def convert(value: str) -> str:
        plain = _TIMESTAMP.fullmatch(value)
        if plain is not None and _calendar(*plain.group(1).split("-")):
            return value
        zoned = _TIMESTAMP_ZONED.fullmatch(value)
        if zoned is not None:
            if not with_zone:
                raise Refusal(
                    "unexpected_time_zone",
                    f"{_short(value)} has a time zone offset, but the column has no time zone",
                )
            if _calendar(*zoned.group(1).split("-")):
                return value
        _not_a_fact(value, "timestamp")
        raise Ask(value)

    return convert


def time_of_day(value: str) -> str:
    if _TIME.fullmatch(value):
        return value
    raise Ask(value)


def uuid_value(value: str) -> str:
    if _UUID.fullmatch(value):
        return value
    raise Ask(value)


def inet_value(value: str) -> str:
    """An IPv4 address (and prefix) written plainly; IPv6 and the rest PostgreSQL reads."""
    if _IPV4.fullmatch(value):
        return value
    raise Ask(value)


def _skip(_: str) -> None:
    """Numbers are not converted: only their syntax matters here."""


def _no_constant(name: str) -> object:
    raise ValueError(name)


def json_value(value: str) -> str:
    """JSON that Python's strict parser reads and that holds none of what PostgreSQL reads
    differently (escaped code points, numbers beyond numeric's range): anything else is
    PostgreSQL's to judge, nesting 100,000 deep included."""
    if "\\u" in value or _JSON_BIG_NUMBER.search(value):
        raise Ask(value)
    try:
        json.loads(value, parse_constant=_no_constant, parse_int=_skip, parse_float=_skip)
    except (ValueError, RecursionError, Ask):
        raise Ask(value) from None
    return escape(value)


def text_of(length: int | None) -> Converter:
    if length is None:
        return escape

    def convert(value: str) -> str:
        # PostgreSQL cuts spaces beyond the length, and refuses anything else beyond it.
        if len(value) > length and len(value.rstrip(" ")) > length:
            raise Refusal(
                "too_long",
                f"{len(value.rstrip(' '))} characters, the column holds at most {length}",
            )
        return escape(value)

    return convert


def one_of(labels: tuple[str, ...]) -> Converter:
    allowed = frozenset(labels)

    def convert(value: str) -> str:
        if value not in allowed:
            raise Refusal("not_allowed", f"{_short(value)!r} is not one of {', '.join(labels)}")
        return escape(value)

    return convert


def ask(value: str) -> str:
    """A type this module does not know: PostgreSQL judges every value."""
    raise Ask(value)


def converter_for(column: Column, formats: Formats | None = None) -> Converter:
    """The column's converter; with the file's own number or date format, one that
    rewrites values written that way first."""
    base = _converter_of(column)
    local = local_reader(column, formats) if formats is not None else None
    if local is None or formats is None:
        return base
    described = formats.date_format if column.type in DATE_TYPES else formats.decimal
    code = NOT_A.get(column.type, "invalid_value")
    return _localised(local, base, column.type in DATE_TYPES, str(described), code)


def _localised(
    local: Callable[[str], str | None], base: Converter, dates: bool, written: str, code: str
) -> Converter:
    def convert(value: str) -> str:
        plain = local(value)
        if plain is not None:
            return base(plain)
        if dates and _DAY_MONTH_ORDER.match(value):
            raise Refusal(code, f"{_short(value)} is not a valid date as {written}")
        if not dates and ("," in value or "." in value):
            raise Refusal(
                code,
                f"{_short(value)} is not a number with {written!r} as its decimal mark",
            )
        return base(value)

    return convert


def _converter_of(column: Column) -> Converter:
    if column.checked:
        return ask  # a domain's own checks are PostgreSQL's
    if column.labels:
        return one_of(column.labels)
    if column.type in _INT_BITS:
        return integer(column.type)
    if column.type in ("varchar", "bpchar", "text"):
        return text_of(column.length)
    known: dict[str, Converter] = {
        "numeric": numeric(column.precision, column.scale),
        "float4": floating("float4"),
        "float8": floating("float8"),
        "bool": boolean,
        "date": iso_date,
        "timestamp": timestamp(with_zone=False),
        "timestamptz": timestamp(with_zone=True),
        "time": time_of_day,
        "uuid": uuid_value,
        "inet": inet_value,
        "json": json_value,
        "jsonb": json_value,
    }
    return known.get(column.type, ask)


def _short(value: str) -> str:
    return value if len(value) <= 40 else f"{value[:20]}…({len(value)} characters)"


@dataclass(slots=True)
class Pending:
    """A record whose values PostgreSQL must judge before it becomes a COPY line or a
    refusal: `asks` are (plan position, text to judge)."""

    fields: list[str]
    line: int
    offset: int
    length: int
    problems: list[Problem]
    asks: list[tuple[int, str]] = field(default_factory=list)


class RowConverter:
    """Turns the fields of one record into one line of COPY text, its problems, or the
    questions PostgreSQL must answer first."""

    def __init__(
        self,
        columns: list[Column | None],
        null_markers: Iterable[str],
        positions: bool = True,
        keys: Iterable[str] = (),
        formats: Formats | None = None,
    ) -> None:
        # The columns of an upsert's key take no NULL: such a row could never be matched.
        self.keys = frozenset(keys)
        self.formats = formats or Formats()
        self.columns = [
            replace(column, nullable=False) if column and column.name in self.keys else column
            for column in columns
        ]
        self.width = len(columns)
        self.positions = positions
        self.nulls = frozenset(null_markers)
        self.plan = [
            (index, column, converter_for(column, self.formats))
            for index, column in enumerate(self.columns)
            if column is not None
        ]

    def copy_line(
        self, fields: list[str], line: int, offset: int, length: int = 0
    ) -> str | list[Problem] | Pending:
        """One line of COPY text, ending with where the record is in the file: its line
        number, byte offset and length (unless the converter was made without positions)."""
        if len(fields) != self.width:
            return [
                Problem(None, "field_count", f"expected {self.width} fields, found {len(fields)}")
            ]
        out = []
        nulls = self.nulls
        try:
            for index, column, convert in self.plan:
                value = fields[index]
                if value not in nulls:
                    out.append(convert(value))
                elif column.nullable:
                    out.append(NULL)
                else:
                    self._refuse_null(column)
        except Exception:  # noqa: BLE001 - Refusal, Ask, or a converter's surprise: look closer
            return self._examine(Pending(fields, line, offset, length, []))
        return self._line(out, line, offset, length)

    def copy_lines(self, records: Sequence[Record]) -> list[str | list[Problem] | Pending]:
        """`copy_line` for each record."""
        return [
            self.copy_line(r.fields, r.line, r.start_offset, r.end_offset - r.start_offset)
            for r in records
        ]

    def _examine(self, pending: Pending) -> list[Problem] | Pending:
        """Every problem of the record, for the person who will fix it, and what PostgreSQL
        must judge."""
        fields = pending.fields
        for position, (index, column, convert) in enumerate(self.plan):
            value = fields[index]
            try:
                if value not in self.nulls:
                    convert(value)
                elif not column.nullable:
                    self._refuse_null(column)
            except Refusal as refusal:
                pending.problems.append(Problem(column.name, refusal.code, refusal.message))
            except Ask as question:
                pending.asks.append((position, question.text))
            except Exception:  # noqa: BLE001 - a converter's surprise: PostgreSQL decides
                pending.asks.append((position, value))
        return pending if pending.asks else pending.problems

    def settle(self, pending: Pending, verdicts: dict[int, Problem]) -> str | list[Problem]:
        """The record once PostgreSQL has judged its questions: `verdicts` holds a problem
        for each plan position it refused."""
        problems = pending.problems + list(verdicts.values())
        if problems:
            order = {column.name: n for n, (_, column, _) in enumerate(self.plan)}
            return sorted(problems, key=lambda p: order.get(p.column or "", -1))
        asked = dict(pending.asks)
        out = []
        for position, (index, _, convert) in enumerate(self.plan):
            value = pending.fields[index]
            if value in self.nulls:
                out.append(NULL)
            elif position in asked:
                out.append(escape(asked[position]))
            else:
                out.append(convert(value))
        return self._line(out, pending.line, pending.offset, pending.length)

    def _refuse_null(self, column: Column) -> NoReturn:
        if column.name in self.keys:
            raise Refusal(
                "null_key",
                "is empty, but it is part of the key the upsert matches rows on: the row could "
                "never be matched again",
            )
        raise Refusal("not_null", "is empty, but the column does not allow empty values")

    def column_at(self, position: int) -> Column:
        return self.plan[position][1]

    def _line(self, out: list[str], line: int, offset: int, length: int) -> str:
        if self.positions:
            out += (str(line), str(offset), str(length))
        return "\t".join(out) + "\n"
