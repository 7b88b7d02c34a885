"""A zip archive read as it arrives: the one file inside it is passed on, unpacked.

A zip's local headers come before each file's data, so the archive can be read front to
back without waiting for its central directory at the end. Folders and the `__MACOSX/`
shadow files that macOS adds are passed over; a second file is refused (which of them
would the user mean?), and so are encrypted entries and compression methods other than
deflate and stored. Each file's CRC-32 is checked. An archive that is an Office or
OpenDocument file (xlsx, ods: zips whose first entry says so) is not unpacked: the caller
is told, and the bytes go on as they are.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from server.api.errors import ApiError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_ENDS = (b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06")  # central directory, its end
_HEADER = struct.Struct("<4sHHHHHIIIHH")
_ENCRYPTED, _SIZES_AFTER, _UTF8 = 0x1, 0x8, 0x800
_STORED, _DEFLATED = 0, 8
_METHODS = {9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstandard", 95: "xz", 99: "AES"}
_FULL = 0xFFFFFFFF
# The first entry of an Office Open XML or OpenDocument file.
_DOCUMENT_ENTRIES = ("[Content_Types].xml", "mimetype")
_DOCUMENT_FOLDERS = ("_rels/", "docProps/", "xl/", "META-INF/")


def _refused(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)


@dataclass
class _Entry:
    name: str
    flags: int
    method: int
    crc: int
    size: int  # compressed, when known before the data
    zip64: bool
    keep: bool

    @property
    def sizes_after(self) -> bool:
        return bool(self.flags & _SIZES_AFTER)


def _is_document(name: str) -> bool:
    return name in _DOCUMENT_ENTRIES or name.startswith(_DOCUMENT_FOLDERS)


def _passed_over(name: str) -> bool:
    """Folders and what macOS adds beside the files it zips."""
    base = name.rsplit("/", 1)[-1]
    return name.endswith("/") or name.startswith("__MACOSX/") or base.startswith("._")


class ZipStream:
    """Fed the archive's bytes in order; calls `out(data, keep)` with what its entries
    unpack to (`keep` is false for what is passed over, so that it is still counted)."""

    def __init__(self, out: Callable[[bytes, bool], None], step: int) -> None:
        self.out, self.step = out, step
        self.pending = b""
        self.state = "header"
        self.entry: _Entry | None = None
        self.inflater: zlib._Decompress | None = None
        self.left = 0  # bytes of a stored entry still to come
        self.crc = 0
        self.file: str | None = None
        self.document = False

    def feed(self, data: bytes) -> None:
        if self.state == "rest":
            return
        if self.state == "raw":
            self.out(data, True)
            return
        self.pending += data
        while self.pending and self._advance():
            pass

    def finish(self) -> None:
        if self.state not in ("rest", "raw"):
            raise _refused("truncated_archive", "the zip file ends in the middle of an entry")
        if self.file is None and not self.document:
            raise _refused("empty_archive", "the zip file holds no file to import")

    def _advance(self) -> bool:
        """One step of the reading; False when more bytes are needed."""
        if self.state == "header":
            return self._header()
        if self.state == "data":
            return self._data()
        return self._descriptor()

    def _header(self) -> bool:
        if len(self.pending) < 4:
            return False
        if self.pending[:4] in _ENDS:
            self.state, self.pending = "rest", b""
            return False
        if self.pending[:4] != _LOCAL:
            raise _refused("corrupt_archive", "the zip file has bytes where an entry should be")
        if len(self.pending) < _HEADER.size:
            return False
        fields = _HEADER.unpack_from(self.pending)
        flags, method, crc, size, unpacked, name_length, extra_length = fields[2:4] + fields[6:]
        end = _HEADER.size + name_length + extra_length
        if len(self.pending) < end:
            return False
        raw_name = self.pending[_HEADER.size : _HEADER.size + name_length]
        name = raw_name.decode("utf-8" if flags & _UTF8 else "cp437", "replace")
        extra = self.pending[_HEADER.size + name_length : end]
        if self.file is None and not self.document and _is_document(name):
            self.document, self.state = True, "raw"
            self.out(self.pending, True)
            self.pending = b""
            return False
        self.pending = self.pending[end:]
        zip64, size = _zip64_size(extra, size, unpacked)
        self._begin(_Entry(name, flags, method, crc, size, zip64, not _passed_over(name)))
        return True

    def _begin(self, entry: _Entry) -> None:
        if entry.flags & _ENCRYPTED:
            raise _refused("encrypted_archive", f"{entry.name!r} in the zip file is encrypted")
        if entry.method not in (_STORED, _DEFLATED):
            kind = _METHODS.get(entry.method, f"method {entry.method}")
            raise ApiError(
                415,
                "unsupported_compression",
                f"{entry.name!r} in the zip file is compressed with {kind}; zip it again "
                "with deflate (the usual setting), or send it gzipped",
            )
        if entry.method == _STORED and entry.sizes_after:
            raise _refused(
                "unsupported_archive",
                f"{entry.name!r} is stored uncompressed with its size after its data; "
                "zip it again with compression on",
            )
        if entry.keep and self.file is not None:
            raise _refused(
                "zip_many_files",
                f"the zip file holds more than one file ({self.file!r}, {entry.name!r}): "
                "send one CSV at a time",
            )
        if entry.keep:
            self.file = entry.name
        self.entry, self.state, self.crc = entry, "data", 0
        self.inflater = zlib.decompressobj(-15) if entry.method == _DEFLATED else None
        self.left = entry.size

    def _data(self) -> bool:
        if self.inflater is None:
            piece, self.pending = self.pending[: self.left], self.pending[self.left :]
            self.left -= len(piece)
            self._emit(piece)
            if self.left:
                return False
        else:
            data, self.pending = self.pending, b""
            self._inflate(self.inflater, data)
            if not self.inflater.eof:
                return False
            self.pending = self.inflater.unused_data
        self._end_of_data()
        return True

    def _inflate(self, inflater: zlib._Decompress, data: bytes) -> None:
        """All that `data` unpacks to, a step at a time (each step is checked)."""
        self._emit(inflater.decompress(data, self.step))
        while inflater.unconsumed_tail and not inflater.eof:
            self._emit(inflater.decompress(inflater.unconsumed_tail, self.step))

    def _emit(self, data: bytes) -> None:
        assert self.entry is not None
        if data:
            self.crc = zlib.crc32(data, self.crc)
            self.out(data, self.entry.keep)

    def _end_of_data(self) -> None:
        assert self.entry is not None
        if self.entry.sizes_after:
            self.state = "descriptor"
            return
        self._check_crc(self.entry.crc)

    def _descriptor(self) -> bool:
        assert self.entry is not None
        signed = 4 if self.pending[:4] == _DESCRIPTOR else 0
        length = signed + 4 + (16 if self.entry.zip64 else 8)
        if len(self.pending) < max(length, 4):
            return False
        (crc,) = struct.unpack_from("<I", self.pending, signed)
        self.pending = self.pending[length:]
        self._check_crc(crc)
        return True

    def _check_crc(self, expected: int) -> None:
        assert self.entry is not None
        if self.crc != expected:
            raise _refused(
                "corrupt_archive",
                f"{self.entry.name!r} in the zip file does not match its checksum",
            )
        self.state, self.entry = "header", None


def _zip64_size(extra: bytes, size: int, unpacked: int) -> tuple[bool, int]:
    """Whether the entry has a zip64 field, and its compressed size taken from it when the
    header's own says 'see there'."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == 0x0001:
            values = extra[at + 4 : at + 4 + length]
            # The unpacked size first, then the packed one, each only if the header's is full.
            at = 8 if unpacked == _FULL else 0
            if size == _FULL and len(values) >= at + 8:
                (size,) = struct.unpack_from("<Q", values, at)
            return True, size
        at += 4 + length
    return False, size
