"""Which encoding a file is written in, and how sure we are.

Exact answers first: a byte-order mark, or bytes that are valid UTF-8 (a file in a
single-byte encoding almost never is). Anything else goes to statistical detectors over the
head of the file: uchardet (through faust-cchardet) first, and when it is unsure or its
answer cannot read the head, chardet. Tried on files written as people write them, each
gets right what the other misses (uchardet: Czech in cp1250; chardet: Western European
text in cp1252 and Japanese in cp932). An answer is kept only if it reads the head without
error, and its confidence is kept with it, so that a job whose encoding is a guess that
uchardet could not make with confidence says so.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cchardet
import chardet

# Below this, the guess is shown as a warning on the job.
CONFIDENT = 0.5
# Fewer bytes outside ASCII than this are too little for a detector to tell encodings apart.
FEW_CLUES = 16
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# What programs that say they write one of these really write: the Windows supersets
# (a euro sign, curly quotes, the NEC and IBM extensions of Japanese code pages).
_WRITTEN_AS = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "cp950",
}
# Read when nothing else reads the head: every byte means something in Latin-1.
_LAST_RESORT = ("cp1252", "latin-1")


@dataclass(frozen=True)
class Encoding:
    name: str  # Python's name of the codec
    bom_bytes: int
    confidence: float | None = None  # None: not a guess (a BOM, UTF-8, the user's choice)

    @property
    def uncertain(self) -> bool:
        return self.confidence is not None and self.confidence < CONFIDENT


def codec_name(name: str) -> str:
    """Python's own name of a text encoding; LookupError if Python has no such codec."""
    info = codecs.lookup(name.strip())
    if not info._is_text_encoding:  # base64, rot13, zlib: codecs, not encodings
        raise LookupError(f"{name} is not a text encoding")
    try:  # `undefined` is a codec too: it refuses everything
        info.decode(info.encode('\n,"')[0])
    except UnicodeError:
        raise LookupError(f"{name} cannot write a line of CSV") from None
    return info.name


def byte_order_mark(head: bytes) -> Encoding | None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return Encoding(name, len(bom))
    return None


def is_utf8(head: bytes) -> bool:
    """Valid UTF-8, a character cut at the end of the head allowed."""
    return _reads(head, "utf-8")


def guess(head: bytes) -> Encoding:
    """The detectors' answer, if one reads the whole lines of the head; else the last
    resort (with no confidence at all)."""
    whole = head[: head.rfind(b"\n") + 1] or head
    if _few_clues(whole):
        return Encoding(_LAST_RESORT[0], 0, 0.0)
    first = _answer(cchardet.detect(whole), whole)
    if first and not first.uncertain:
        return first
    found = _answer(chardet.detect(whole, compat_names=False), whole) or first
    if found:
        return found
    for candidate in _LAST_RESORT:
        if _reads(whole, candidate):
            return Encoding(candidate, 0, 0.0)
    raise AssertionError("Latin-1 reads every byte")  # pragma: no cover


def _few_clues(head: bytes) -> bool:
    """Too few bytes outside ASCII for the detectors to go on (`café` is one), all of them
    letters in cp1252: the most common single-byte encoding is as good a guess as theirs,
    and it is shown as one."""
    clues = [byte for byte in head if byte > 0x7F]
    if len(clues) >= FEW_CLUES:
        return False
    try:
        return bytes(clues).decode(_LAST_RESORT[0]).isalpha()
    except UnicodeDecodeError:
        return False


def _answer(found: Mapping[str, Any], head: bytes) -> Encoding | None:
    confidence = round(float(found.get("confidence") or 0.0), 2)
    for candidate in _candidates(found.get("encoding")):
        if _reads(head, candidate):
            return Encoding(candidate, 0, confidence)
    return None


def _candidates(name: str | None) -> list[str]:
    try:
        found = codec_name(name or "")
    except LookupError:
        return []
    wider = _WRITTEN_AS.get(found)
    return [wider, found] if wider else [found]


def _reads(head: bytes, encoding: str) -> bool:
    """The head decodes without error, a character cut at its end allowed."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True
