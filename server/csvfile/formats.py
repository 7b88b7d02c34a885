"""Local ways of writing numbers and dates: `1.234,56`, `02.02.1991`, `01/31/2024`.

A file says how it writes numbers (its decimal mark, and the matching thousands separator)
and dates (the order of day, month and year) once, for all its values; the upload's
`decimal` and `date_format` fields say it, or the first rows decide it. A value in the
file's own way is rewritten into the one PostgreSQL reads without a setting (`1234.56`,
`1991-02-02`) before it is judged as any other value, so it lands exactly as the ISO text
would. Decimals are rewritten as text, never through a float.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from server.targets import Column

DECIMAL_MARKS = (".", ",")
# The spaces that group thousands: a space, a no-break space, a narrow no-break space.
_SPACES = " \u00a0\u202f"
# Per decimal mark: the characters that may group its thousands (apostrophes are Swiss).
THOUSANDS = {",": "." + _SPACES, ".": ",'\u2019" + _SPACES}
_NUMBER_TYPES = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8"})
_INTEGER_TYPES = frozenset({"int2", "int4", "int8"})
DATE_TYPES = frozenset({"date", "timestamp", "timestamptz"})

# Each date format: how its date part is written, and the order of (day, month, year) in
# the groups of that pattern.
_DAY, _MONTH = r"([0-9]{1,2})", r"([0-9]{1,2})"
DATE_FORMATS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "YYYY-MM-DD": (r"([0-9]{4})-([0-9]{2})-([0-9]{2})", (2, 1, 0)),
    "DD.MM.YYYY": (rf"{_DAY}\.{_MONTH}\.([0-9]{{4}})", (0, 1, 2)),
    "DD/MM/YYYY": (rf"{_DAY}/{_MONTH}/([0-9]{{4}})", (0, 1, 2)),
    "MM/DD/YYYY": (rf"{_MONTH}/{_DAY}/([0-9]{{4}})", (1, 0, 2)),
    "DD-MM-YYYY": (rf"{_DAY}-{_MONTH}-([0-9]{{4}})", (0, 1, 2)),
    "YYYYMMDD": (r"([0-9]{4})([0-9]{2})([0-9]{2})", (2, 1, 0)),
}
# A date, then the end of the value or a time after a space or a `T`.
_TAIL = r"(?:([T ]+)(.*))?"
_DATE_READERS = {
    name: (re.compile(rf"\s*{pattern}{_TAIL}", re.ASCII | re.DOTALL), order)
    for name, (pattern, order) in DATE_FORMATS.items()
}
_ISO_START = re.compile(r"\s*[0-9]{4}-", re.ASCII)
# How many of the first rows, and at most how many of their values, decide the formats.
SAMPLE_ROWS = 1_000
SAMPLE_VALUES = 50_000


class AmbiguousFormat(ValueError):
    """The first rows allow two readings of the file's numbers or dates; `field` is the
    upload field that decides, `line` a line whose value reads both ways."""

    def __init__(self, field: str, line: int, value: str, readings: dict[str, str]) -> None:
        both = " or as ".join(f"{reading} ({name})" for name, reading in readings.items())
        super().__init__(
            f"line {line}: {value!r} reads as {both}; say which with the `{field}` field"
        )
        self.field = field
        self.line = line
        self.value = value
        self.readings = readings


@dataclass(frozen=True)
class Formats:
    """How the file writes numbers and dates; None is PostgreSQL's own reading."""

    decimal: str | None = None
    date_format: str | None = None


def _number_pattern(mark: str) -> re.Pattern[str]:
    """A number with `mark` as its decimal mark, its thousands grouped by one of the
    matching separators (the same one throughout) or not grouped at all."""
    group = "[" + re.escape(THOUSANDS[mark]) + "]"
    whole = rf"(?:[0-9]{{1,3}}(?P<sep>{group})[0-9]{{3}}(?:(?P=sep)[0-9]{{3}})*|[0-9]+)"
    return re.compile(
        rf"\s*[+\-\u2212]?(?:{whole}(?:{re.escape(mark)}[0-9]*)?|{re.escape(mark)}[0-9]+)"
        r"(?:[eE][+-]?[0-9]+)?\s*"
    )


_NUMBERS = {mark: _number_pattern(mark) for mark in DECIMAL_MARKS}
_REWRITES = {
    mark: str.maketrans({mark: ".", "\u2212": "-", **dict.fromkeys(THOUSANDS[mark])})
    for mark in DECIMAL_MARKS
}


def plain_number(value: str, mark: str) -> str | None:
    """`value` as PostgreSQL reads numbers (`1.234,56` → `1234.56`), or None when it is
    not a number written with `mark`."""
    if _NUMBERS[mark].fullmatch(value) is None or not any(c.isdigit() for c in value):
        return None
    return value.strip().translate(_REWRITES[mark])


def iso_date(value: str, date_format: str) -> str | None:
    """`value` with its date part as YYYY-MM-DD (`02.02.1991 13:45` → `1991-02-02 13:45`),
    or None when it does not start with a valid date in `date_format`."""
    reader, order = _DATE_READERS[date_format]
    found = reader.fullmatch(value)
    if found is None:
        return None
    parts = found.groups()
    day, month, year = (int(parts[index]) for index in order)
    try:
        when = date(year, month, day)
    except ValueError:
        return None
    tail = parts[4]
    return when.isoformat() if tail is None else f"{when.isoformat()} {tail}"


def date_style(formats: Formats) -> str | None:
    """The DateStyle under which PostgreSQL reads the file's own dates as the file means
    them (COPY then takes them as written); None when ISO order is enough."""
    if formats.date_format in ("DD.MM.YYYY", "DD/MM/YYYY", "DD-MM-YYYY"):
        return "ISO, DMY"
    if formats.date_format == "MM/DD/YYYY":
        return "ISO, MDY"
    return None


# The one thousands separator a run of plain lines may use with each decimal mark: the
# others (spaces, apostrophes) go the careful way.
RUN_THOUSANDS = {",": ".", ".": ","}


def rewritten_in_sql(column: Column, formats: Formats) -> bool:
    """Whether the fast path sends this column's numbers as the file writes them, for
    PostgreSQL to rewrite as it stores them."""
    return (
        formats.decimal is not None
        and column.type in _NUMBER_TYPES
        and not column.checked
        and not column.labels
    )


def local_reader(column: Column, formats: Formats) -> Callable[[str], str | None] | None:
    """How a value of this column in the file's own way becomes PostgreSQL's way; None
    when the column's values are read as they are."""
    if column.type in _NUMBER_TYPES and formats.decimal is not None:
        mark = formats.decimal
        return lambda value: plain_number(value, mark)
    if column.type in DATE_TYPES and formats.date_format not in (None, "YYYY-MM-DD"):
        date_format = formats.date_format
        return lambda value: iso_date(value, date_format)
    return None


# Detection ----------------------------------------------------------------------------


def _open(column: Column | None, given: Formats) -> bool:
    """Whether the column holds numbers or dates whose format the upload did not give."""
    return column is not None and (
        (column.type in _NUMBER_TYPES and given.decimal is None)
        or (column.type in DATE_TYPES and given.date_format is None)
    )


def undecided(columns: Sequence[Column | None], given: Formats) -> bool:
    """Whether the file has numbers or dates whose format the upload did not give."""
    return any(_open(column, given) for column in columns)


def detect_formats(
    rows: Iterable[tuple[int, Sequence[str]]],
    columns: Sequence[Column | None],
    null_markers: Iterable[str],
    given: Formats,
) -> Formats:
    """The formats the first rows decide, where the upload did not give them: `rows` are
    (line, fields) of the file's first records, `columns` the column each field fills."""
    nulls = frozenset(null_markers)
    wanted = [
        (index, column.type)
        for index, column in enumerate(columns)
        if column is not None and _open(column, given)
    ]
    sample = list(rows)[: SAMPLE_VALUES // max(len(wanted), 1) or 1]
    numbers: list[tuple[int, str, bool]] = []
    dates: list[tuple[int, str]] = []
    for index, kind in wanted:  # a column at a time: only the columns that matter
        values = [
            (line, fields[index])
            for line, fields in sample
            if index < len(fields) and fields[index] not in nulls
        ]
        if kind in DATE_TYPES:
            dates += values
        else:
            numbers += [(line, value, kind in _INTEGER_TYPES) for line, value in values]
    # The first line that reads two ways is the one named.
    numbers.sort(key=lambda number: number[0])
    dates.sort(key=lambda day: day[0])
    decimal = given.decimal or _decimal_of(numbers)
    return Formats(decimal, given.date_format or _date_format_of(dates))


def _decimal_of(numbers: list[tuple[int, str, bool]]) -> str | None:
    """The decimal mark, when a value groups its thousands or has a comma (which
    PostgreSQL never reads in a number); None leaves numbers as PostgreSQL reads them."""
    if all(_plain(values) for values in _by_kind(numbers)):
        return None  # written as PostgreSQL reads them: nothing to decide
    votes: Counter[str] = Counter()
    either: tuple[int, str] | None = None
    decides = False
    for line, value, whole in numbers:
        vote, triggers = _mark_of(value.strip().lstrip("+-\u2212"), whole)
        decides = decides or triggers or "\u2212" in value  # a minus sign, not a hyphen
        if vote == "either":
            either = either or (line, value)
        elif vote is not None:
            votes[vote] += 1
    if not decides:
        return None
    if votes["."] != votes[","]:
        return "." if votes["."] > votes[","] else ","
    if either is None:
        return "."  # nothing tells the marks apart: PostgreSQL's own
    line, value = either
    readings = {
        f"decimal {mark}": plain_number(value, mark) or "not a number" for mark in DECIMAL_MARKS
    }
    raise AmbiguousFormat("decimal", line, value, readings)


# Numbers PostgreSQL reads as written, in whole-number columns and in the others: such
# values decide nothing (a separator, a comma or a minus sign would).
_PLAIN_NUMBERS = {
    True: r"[+-]?[0-9]+",
    False: r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?",
}
_PLAIN_LISTS = {
    whole: re.compile(rf"(?:{one})(?:\n(?:{one}))*", re.ASCII)
    for whole, one in _PLAIN_NUMBERS.items()
}


def _by_kind(numbers: list[tuple[int, str, bool]]) -> list[tuple[bool, list[str]]]:
    """The values of whole-number columns, and the others'."""
    return [(whole, [value for _, value, w in numbers if w is whole]) for whole in (True, False)]


def _plain(kind: tuple[bool, list[str]]) -> bool:
    """Whether every value is a plain number, checked in one match."""
    whole, values = kind
    joined = "\n".join(values)
    # A value with a line break of its own would pass for two values.
    return joined.count("\n") == max(len(values) - 1, 0) and bool(
        _PLAIN_LISTS[whole].fullmatch(joined) or not values
    )


_GROUPED = {mark: re.compile(rf"[0-9]{{1,3}}(?:{re.escape(mark)}[0-9]{{3}})+") for mark in ".,"}
_GROUPING = frozenset(",'\u2019" + _SPACES)


def _mark_of(number: str, whole: bool) -> tuple[str | None, bool]:
    """The decimal mark one value decides (`either` when it reads both ways, None when it
    decides nothing), and whether it is written in a way PostgreSQL does not read: a
    comma, a thousands separator."""
    readings = {mark: plain_number(number, mark) for mark in DECIMAL_MARKS}
    if readings["."] is None and readings[","] is None:
        return None, False
    triggers = not _GROUPING.isdisjoint(number) or number.count(".") > 1
    if readings["."] == readings[","]:
        return None, triggers
    if readings["."] is None or readings[","] is None:
        return ("," if readings["."] is None else "."), triggers
    # Both read it, differently: one separator followed by three digits.
    for mark, other in ((",", "."), (".", ",")):
        if _GROUPED[mark].fullmatch(number) and (number.count(mark) > 1 or whole):
            return other, True  # two of them, or in a whole number: thousands
    if "," in number:
        return "either", True
    return None, whole  # `1.234`: PostgreSQL's reading stands unless the file decides


def _date_format_of(dates: list[tuple[int, str]]) -> str | None:
    """The date format that reads the most values written with a numeric day and month;
    None when no format reads more values than are written as ISO dates: the odd value of
    an ISO file is refused on its own row, not read in a format the file never uses."""
    counts: Counter[str] = Counter()
    iso = 0
    for _, value in dates:
        if _ISO_START.match(value):
            iso += 1
            continue
        for name in DATE_FORMATS:
            if iso_date(value, name) is not None:
                counts[name] += 1
    if not counts or max(counts.values()) <= iso:
        return None
    ranked = counts.most_common()
    best = ranked[0][0]
    rivals = [name for name, count in ranked[1:] if count == ranked[0][1]]
    for rival in rivals:
        for line, value in dates:
            readings = {name: iso_date(value, name) for name in (best, rival)}
            if None not in readings.values() and len(set(readings.values())) == 2:
                shown = {name: str(reading) for name, reading in readings.items()}
                raise AmbiguousFormat("date_format", line, value, shown)
    return best
