"""Guess how a file is written from its first bytes: encoding, line ending, delimiter."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from dataclasses import dataclass

from server.csvfile.encoding import Encoding, byte_order_mark, guess, is_utf8

HEAD_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
# Encodings whose byte order a byte-order mark gives; without one, Windows' order.
_BYTE_ORDER_FREE = {"utf-16": "utf-16-le", "utf-32": "utf-32-le"}
_LINE_END_OR_QUOTE = re.compile(r'"|\r\n|\r|\n')
_CONTROL = frozenset(range(0x00, 0x09)) | frozenset(range(0x0E, 0x20)) - {0x1A}
# Excel's first line naming the delimiter (`sep=;`), quoted by some tools that copy it.
_SEP_LINE = re.compile(r'(?P<quote>"?)sep=(?P<delimiter>.)(?P=quote)(?:\r\n|\r|\n)', re.DOTALL)


class NotText(ValueError):
    """The bytes are not a text file (an image, an archive, a binary export)."""


class EmptyFile(ValueError):
    """Nothing to read, or only white space."""


class UnknownDelimiter(ValueError):
    """A `sep=` first line names a delimiter this service does not read."""


@dataclass(frozen=True)
class Layout:
    encoding: str
    bom_bytes: int
    terminator: str  # how lines end: "\n", "\r\n" or "\r"
    delimiter: str
    encoding_confidence: float | None = None  # the detector's, when the encoding is a guess
    sep_line: bool = False  # the file starts with Excel's `sep=X` line, before its header

    @property
    def split(self) -> str:
        """What records are split on: LF for LF and CRLF files, CR for CR files."""
        return "\r" if self.terminator == "\r" else "\n"


def detect_layout(head: bytes, encoding: str | None = None, delimiter: str | None = None) -> Layout:
    """Read the first bytes of a file and say how it is written. Overrides win."""
    found = _given(head, encoding) if encoding else detect_encoding(head)
    # Bad bytes in UTF-8 are left for the rows that hold them to report.
    strict = encoding is None and found.name != "utf-8"
    text = decode_head(head[found.bom_bytes :], found.name, strict)
    if not text.strip():
        raise EmptyFile("the file is empty")
    named = sep_line(text)
    if named is not None:
        text = text[named[1] :]
    terminator = detect_terminator(text)
    return Layout(
        found.name,
        found.bom_bytes,
        terminator,
        delimiter or (named[0] if named else detect_delimiter(text, terminator)),
        found.confidence,
        sep_line=named is not None,
    )


def sep_line(text: str) -> tuple[str, int] | None:
    """The delimiter an Excel `sep=X` first line names, and the line's length; None when
    the file does not start with one."""
    found = _SEP_LINE.match(text)
    if found is None:
        return None
    named = found.group("delimiter")
    if named not in DELIMITERS:
        raise UnknownDelimiter(
            f"the first line names {named!r} as the delimiter; the delimiters read are "
            f"{', '.join(map(repr, DELIMITERS))}"
        )
    return named, found.end()


def detect_encoding(head: bytes) -> Encoding:
    if bom := byte_order_mark(head):
        return bom
    if not head.strip():
        raise EmptyFile("the file is empty")
    if _looks_binary(head):
        raise NotText("the file is not text (it holds binary bytes such as NUL)")
    if is_utf8(head) or _damaged_utf8(head):
        return Encoding("utf-8", 0)
    return guess(head)


def _given(head: bytes, encoding: str) -> Encoding:
    """The user's encoding; its own byte-order mark, if the file starts with one, is
    skipped (`utf-16` takes its byte order from it, little-endian without one). A file of
    an encoding whose line end is one byte is checked for binary."""
    name = codecs.lookup(encoding).name
    bom = byte_order_mark(head)
    if bom and (bom.name == name or bom.name.startswith(f"{name}-")):
        return Encoding(bom.name, bom.bom_bytes)
    name = _BYTE_ORDER_FREE.get(name, name)
    if "\n".encode(name) == b"\n" and _looks_binary(head):
        raise NotText("the file is not text (it holds binary bytes such as NUL)")
    return Encoding(name, 0)


def _damaged_utf8(head: bytes) -> bool:
    """UTF-8 with a few bad bytes, not a single-byte encoding: its valid multi-byte
    characters are at least as many as its invalid sequences (text in cp1252 almost never
    forms a valid multi-byte character). Read as UTF-8, the rows with the bad bytes are
    refused; read as cp1252, every other accented character would be silently garbled."""
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(head, final=False)
    invalid = text.count("\ufffd") - head.count("\ufffd".encode())
    wide = sum(1 for char in text if char > "\x7f") - invalid
    return wide >= invalid


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    controls = sum(1 for byte in head[:4096] if byte in _CONTROL)
    return controls > 0.01 * min(len(head), 4096)


def decode_head(head: bytes, encoding: str, strict: bool = True) -> str:
    """Decode the first bytes; a character cut at the end of the head is dropped. With an
    encoding the user chose, bad bytes are left for the rows that hold them to report."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)("strict" if strict else "replace")
        return decoder.decode(head, final=False)
    except UnicodeDecodeError as error:
        raise NotText(f"the file cannot be read as {encoding}: {error.reason}") from error
    except LookupError as error:
        raise NotText(f"unknown encoding {encoding!r}") from error


def detect_terminator(text: str) -> str:
    """Lines end with LF, CRLF (RFC 4180's own, Excel's and Python's) or CR alone (old
    Macs). The first line end outside quotes decides: a quoted field may hold any of them.
    Records are split on LF for both LF and CRLF files (see `Layout.split`), so a file that
    mixes them is still read; the fast path takes only lines that end as the first does."""
    quoted = False
    for found in _LINE_END_OR_QUOTE.finditer(text):
        mark = found.group()
        if mark == '"':
            quoted = not quoted
        elif not quoted:
            # A CR at the very end of the head may be the first half of a CRLF.
            return "\n" if mark == "\r" and found.end() == len(text) else mark
    return "\n"


def detect_delimiter(text: str, terminator: str) -> str:
    """The candidate that splits the first records into the most consistent field counts."""
    # Whole records only; a header longer than the sample is all there is to go on.
    whole = text.rfind(terminator) + 1
    sample = text if len(text) < HEAD_BYTES // 2 or not whole else text[:whole]
    best, best_score = ",", (0.0, 0)
    for candidate in DELIMITERS:
        score = _consistency(sample, candidate)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _consistency(sample: str, delimiter: str) -> tuple[float, int]:
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    rows = [row for row in itertools.islice(reader, 50) if row]
    if not rows or len(rows[0]) < 2:
        return (0.0, 0)
    width = len(rows[0])
    agreeing = sum(1 for row in rows if len(row) == width)
    return (agreeing / len(rows), width)
