"""The fast path: one regular expression that a run of ordinary records matches as a whole.

Most files are mostly plain: one record per line, values already written the way
PostgreSQL reads them. For such a run of lines, one match of a pattern compiled from the
table's column types proves every value valid, and the lines can go to `COPY ... (FORMAT
csv)` as they are, without Python ever splitting a field. The pattern is strict: it admits
only values that the per-column converters would pass through unchanged and that
PostgreSQL reads with the same meaning. Anything else (a quoted line break, a value to
refuse, a `+5`, a leap day) stops the match, and the record goes the careful way.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Collection, Sequence
from itertools import accumulate, chain

from server.csvfile.formats import RUN_THOUSANDS, Formats
from server.targets import Column

# PostgreSQL's name for each encoding whose bytes the pattern can read directly: UTF-8 and
# the single-byte encodings, where an ASCII byte (a delimiter, a quote, a digit, a line end)
# is always that character. PostgreSQL and Python read every byte of each alike (a test holds
# them to it). Multi-byte encodings whose second bytes can look like ASCII (Shift-JIS, GBK,
# Big5) go the careful way, which decodes them in Python.
COPY_ENCODINGS = {
    "utf-8": "UTF8",
    **{f"cp{page}": f"WIN{page}" for page in (866, 874, *range(1250, 1259))},
    **{
        f"iso8859-{part}": f"LATIN{n}"
        for n, part in enumerate((1, 2, 3, 4, 9, 10, 13, 14, 15, 16), 1)
    },
    **{f"iso8859-{part}": f"ISO_8859_{part}" for part in (5, 6, 7, 8)},
    "koi8-r": "KOI8R",
    "koi8-u": "KOI8U",
}

_YEAR = rb"[12][0-9]{3}"
_MONTH_DAY = (
    rb"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    rb"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = _YEAR + rb"-" + _MONTH_DAY
# Days of each month as a day and a month in either order (one digit or two), and as
# `MMDD`: the local date formats, read by COPY with the matching DateStyle.
_DAYS = {
    "31": (rb"(?:[12][0-9]|3[01]|0?[1-9])", rb"(?:1[02]|0?[13578])"),
    "30": (rb"(?:[12][0-9]|30|0?[1-9])", rb"(?:11|0?[469])"),
    "28": (rb"(?:1[0-9]|2[0-8]|0?[1-9])", rb"0?2"),
}


def _day_month(separator: bytes, day_first: bool) -> bytes:
    pairs = [(day, month) if day_first else (month, day) for day, month in _DAYS.values()]
    return rb"(?:" + b"|".join(a + re.escape(separator) + b for a, b in pairs) + rb")"


_LOCAL_DATES = {
    "DD.MM.YYYY": _day_month(b".", True) + rb"\." + _YEAR,
    "DD/MM/YYYY": _day_month(b"/", True) + rb"/" + _YEAR,
    "DD-MM-YYYY": _day_month(b"-", True) + rb"-" + _YEAR,
    "MM/DD/YYYY": _day_month(b"/", False) + rb"/" + _YEAR,
    "YYYYMMDD": _YEAR + _MONTH_DAY.replace(b"-", b""),
}
_CLOCK = rb"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6}+)?+)?+"
_TIME = rb"[T ]" + _CLOCK
_ZONE = rb"(?:Z|[+-](?:0[0-9]|1[0-4])(?::?+[0-5][0-9])?+)"
# Exponents small enough that no 15-digit mantissa reaches the type's limits.
_FLOAT8 = rb"-?+(?:[0-9]{1,15}+(?:\.[0-9]{1,15}+)?+|\.[0-9]{1,15}+)(?:[eE][+-]?+[0-9]{1,2}+)?+"
_FLOAT4 = rb"-?+(?:[0-9]{1,6}+(?:\.[0-9]{1,6}+)?+|\.[0-9]{1,6}+)(?:[eE][+-]?+(?:20|1[0-9]|[0-9]))?+"
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = rb"(?:" + _OCTET + rb"\.){3}" + _OCTET + rb"(?:/(?:3[0-2]|[12][0-9]|[0-9]))?+"
_HEX = rb"[0-9a-fA-F]"
_UUID = _HEX + rb"{8}-" + (_HEX + rb"{4}-") * 3 + _HEX + rb"{12}"
_BOOLEANS = (b"true", b"false", b"yes", b"off", b"on", b"no", b"t", b"f", b"y", b"n", b"1", b"0")
_INT_LIMITS = {"int2": 2**15 - 1, "int4": 2**31 - 1, "int8": 2**63 - 1}
_SIMPLE_LABEL = re.compile(r"[A-Za-z0-9_ .-]+")
# How many digits of a number without a fraction a float column surely holds as written.
_FLOAT_DIGITS = {"float8": 15, "float4": 6}


def encoding_for_copy(encoding: str) -> str | None:
    return COPY_ENCODINGS.get(codecs.lookup(encoding).name)


def value_pattern(column: Column, formats: Formats | None = None) -> bytes | None:
    """What a value of this column may look like on the fast path; None if it has none.
    With a decimal comma, numbers take it only without a fraction: a dot is a thousands
    separator there, and COPY reads neither."""
    fraction_free = column.type == "numeric" or column.type in _FLOAT_DIGITS
    if formats is not None and formats.decimal == "," and fraction_free and not column.labels:
        whole, _ = _number_digits(column)
        return rb"-?+[0-9]{1,%d}+" % whole if whole > 0 else None
    if column.labels:
        return _labels(column.labels)
    if column.type in _INT_LIMITS:
        return rb"-?+" + _at_most(_INT_LIMITS[column.type])
    day = _DATE
    if formats is not None and formats.date_format in _LOCAL_DATES:
        day = rb"(?:" + _DATE + rb"|" + _LOCAL_DATES[formats.date_format] + rb")"
    fixed = {
        "date": day,
        "timestamp": day + _TIME,
        "timestamptz": day + _TIME + _ZONE + b"?+",
        "uuid": _UUID,
        "bool": rb"(?i:" + b"|".join(_BOOLEANS) + rb")",
        "float8": _FLOAT8,
        "float4": _FLOAT4,
        "time": _CLOCK,
        "inet": _IPV4,
    }
    if column.type == "numeric":
        return _numeric(column)
    return fixed.get(column.type)


def _at_most(limit: int) -> bytes:
    """Whole numbers from 0 to `limit`: any with fewer digits than `limit` (the common
    case, tried first), then those with as many, digit by digit."""
    digits = str(limit)
    alternatives = [rb"[0-9]{1,%d}+(?![0-9])" % (len(digits) - 1)]
    for at, digit in enumerate(digits):
        low, rest = (1 if at == 0 else 0), len(digits) - at - 1
        if int(digit) - 1 >= low:
            alternatives.append(
                digits[:at].encode() + b"[%d-%d]" % (low, int(digit) - 1) + b"[0-9]{%d}" % rest
            )
    alternatives.append(digits.encode())
    return rb"(?:" + b"|".join(alternatives) + rb")"


def _number_digits(column: Column) -> tuple[int, int]:
    """How many digits before and after the point a number column surely holds as written:
    fewer than its type's limit has, `precision - scale` and `scale` for numeric."""
    if column.type in _INT_LIMITS:
        return len(str(_INT_LIMITS[column.type])) - 1, 0
    if column.type in _FLOAT_DIGITS:
        return _FLOAT_DIGITS[column.type], _FLOAT_DIGITS[column.type]
    if column.precision is None:
        return 30, 30
    return column.precision - (column.scale or 0), column.scale or 0


def _numeric(column: Column) -> bytes | None:
    """Decimals that fit as written: at most `precision - scale` digits before the point
    (none, as in `.5`) and `scale` after it."""
    whole, places = _number_digits(column)
    if whole <= 0 or places < 0:
        return None
    if not places:
        return rb"-?+[0-9]{1,%d}+" % whole
    fraction = rb"\.[0-9]{1,%d}+" % places
    return rb"-?+(?:[0-9]{1,%d}+(?:%s)?+|%s)" % (whole, fraction, fraction)


def _labels(labels: Sequence[str]) -> bytes | None:
    if not all(_SIMPLE_LABEL.fullmatch(label) for label in labels):
        return None
    # Longest first: a label that is the start of another must not win the match.
    ordered = sorted(labels, key=len, reverse=True)
    return rb"(?:" + b"|".join(re.escape(label.encode()) for label in ordered) + rb")"


def text_pattern(column: Column, delimiter: bytes) -> bytes | None:
    """Text and varchar(n)/char(n): unquoted, or quoted with doubled quotes inside."""
    if column.type not in ("text", "varchar", "bpchar"):
        return None
    plain = rb"[^" + re.escape(delimiter) + rb'"\r\n\x00]'
    inner = rb'[^"\r\n\x00]'
    if column.length is None:
        quoted, unquoted = rb'"' + inner + rb'*+(?:""' + inner + rb'*+)*+"', plain + rb"*+"
    else:
        # Bytes, not characters: stricter for multi-byte text, which then goes the careful way.
        quoted = rb'"(?:' + inner + rb'|""){0,%d}+"' % column.length
        unquoted = plain + rb"{0,%d}+" % column.length
    return rb"(?>" + quoted + rb"|" + unquoted + rb")"


def copy_null(null_markers: Collection[str], delimiter: str) -> str | None:
    """The one null marker that COPY can be told (its NULL option), or None when the
    markers are several, or one that COPY's CSV format could not tell from a value."""
    markers = set(null_markers)
    if len(markers) != 1:
        return None
    (marker,) = markers
    if any(char in marker for char in (delimiter, '"', "\r", "\n")):
        return None
    return marker


def local_number(column: Column, mark: str, delimiter: bytes | None) -> bytes | None:
    """A number as the file writes it (`-1.234.567,89` with a decimal comma), grouped by
    the one thousands separator runs take, that the column surely holds once PostgreSQL
    has dropped the separators and read the mark. A mark or separator that is the
    delimiter is left out: the value is then unquoted."""
    whole, places = _number_digits(column)
    separator = RUN_THOUSANDS[mark].encode()
    if mark.encode() == delimiter:
        places = 0
    groups = [] if separator == delimiter else range(whole // 3, 0, -1)
    integer = [
        rb"[0-9]{1,%d}+(?:%s[0-9]{3}+){%d}+" % (min(3, whole - 3 * k), re.escape(separator), k)
        for k in groups
        if whole - 3 * k >= 1
    ]
    if whole <= 0:
        return None
    integer.append(rb"[0-9]{1,%d}+" % whole)
    number = rb"(?:" + b"|".join(integer) + rb")"
    if not places:
        return rb"-?+" + number
    fraction = re.escape(mark.encode()) + rb"[0-9]{1,%d}+" % places
    return rb"-?+(?:" + number + rb"(?:" + fraction + rb")?+|" + fraction + rb")"


def field_pattern(
    column: Column | None,
    delimiter: bytes,
    null: bytes = b"",
    formats: Formats | None = None,
    rewritten: bool = False,
) -> bytes | None:
    """One field: a column's value, or anything at all for a column that is not loaded.

    The null marker (`null`, bare or quoted) is NULL, as on the careful path; a column that
    does not take NULL must not hold it. With a marker other than the empty string, an
    empty field is an empty string: only text columns take it here.
    """
    if column is None:
        return text_pattern(Column("", "text", True, False), delimiter)
    marker = rb"(?:" + re.escape(null) + rb'|"' + re.escape(null) + rb'")'
    text = text_pattern(column, delimiter)
    if text is not None:
        if column.nullable:
            return text
        return rb"(?!" + marker + rb"(?:" + re.escape(delimiter) + rb"|\r|\n))" + text
    if rewritten and formats is not None and formats.decimal is not None:
        quoted = local_number(column, formats.decimal, None)
        value = local_number(column, formats.decimal, delimiter)
    else:
        quoted = value = value_pattern(column, formats)
    if value is None or quoted is None:
        return None
    either = rb'(?>"' + quoted + rb'"|' + value + rb")"
    return rb"(?:" + either + rb"|" + marker + rb")" if column.nullable else either


def row_pattern(
    columns: Sequence[Column | None],
    delimiter: str,
    terminator: str,
    encoding: str,
    null_markers: Collection[str],
    formats: Formats | None = None,
    rewritten: Collection[str] = (),
) -> re.Pattern[bytes] | None:
    """A pattern whose `match` at a record boundary spans the valid run of records after it,
    each one line that ends as the file's lines do; None when this file cannot take the
    fast path at all (markers COPY cannot be told, an encoding it cannot read, a column
    without a pattern)."""
    null = copy_null(null_markers, delimiter)
    if null is None or careful_only(columns, delimiter, encoding, null_markers, formats):
        return None
    separator = delimiter.encode()
    fields = [
        field_pattern(
            column,
            separator,
            null.encode(),
            formats,
            column is not None and column.name in rewritten,
        )
        for column in columns
    ]
    row = re.escape(separator).join(field for field in fields if field is not None)
    return re.compile(rb"(?>" + row + re.escape(terminator.encode()) + rb")*+")


def careful_only(
    columns: Sequence[Column | None],
    delimiter: str,
    encoding: str,
    null_markers: Collection[str],
    formats: Formats | None = None,
) -> str | None:
    """Why no record of this file can take the fast path, or None if they can."""
    if copy_null(null_markers, delimiter) is None:
        return (
            f"COPY takes one null marker without quotes or the delimiter in it, not "
            f"{sorted(set(null_markers))}"
        )
    if encoding_for_copy(encoding) is None:
        return f"the pattern reads UTF-8 and single-byte encodings, not {encoding}"
    if not columns:
        return "the file has no columns"
    for column in columns:
        if column is not None and field_pattern(column, delimiter.encode(), b"", formats) is None:
            return f"column {column.name!r} ({column.type}) has no plain form to match"
    return None


def with_positions(run: bytes, line: int, offset: int, terminator: str, delimiter: str) -> bytes:
    """The run's lines for COPY, each followed by its line number, byte offset and length."""
    end = terminator.encode()
    lines = run.split(end)
    lines.pop()  # a run ends with a line end: the last part is empty
    lengths = list(map(len(end).__add__, map(len, lines)))
    starts = accumulate(lengths, initial=offset)
    suffix = (delimiter + "%d" + delimiter + "%d" + delimiter + "%d\n").encode()
    # `starts` has one more item than there are lines: the end of the last one.
    numbers = zip(range(line, line + len(lines)), starts, lengths, strict=False)
    return b"".join(chain.from_iterable(zip(lines, map(suffix.__mod__, numbers), strict=True)))
