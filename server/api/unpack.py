"""Compressed uploads, unpacked while they stream into storage.

A file compressed with gzip, bzip2, xz or zstd, or alone in a zip, is recognised by its first
bytes (its magic number), whatever its name, and what lands in storage is the CSV inside
it: the workers, their checkpoints and the refused rows' byte offsets then know only the
plain file. A workbook (xlsx, ods, xls) is stored as it came. A compression bomb is
refused while it streams, as soon as the unpacked bytes pass `MAX_UNCOMPRESSED_BYTES` or,
beyond the first megabytes, `MAX_COMPRESSION_RATIO` times what has arrived: the sender's
few kilobytes never become the disk's terabyte.
"""

from __future__ import annotations

import bz2
import lzma
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from server.api.errors import BODY_LEFT_UNREAD, ApiError
from server.api.unzip import ZIP_MAGIC, ZipStream

if sys.version_info >= (3, 14):
    from compression import zstd as zstd
else:  # the same module, as published for older Pythons
    from backports import zstd as zstd

# Below this many unpacked bytes no ratio is too high: a small, very regular file is not
# a bomb.
RATIO_FLOOR = 16 * 1024 * 1024
# Unpacked at most this much at a time, so that a bomb is caught within one step.
STEP = 1024 * 1024


@dataclass(frozen=True)
class UnpackLimits:
    max_bytes: int = 50 * 1024**3
    max_ratio: float = 100.0


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


_FORMATS: dict[str, tuple[bytes, Callable[[], _Decompressor]]] = {
    "gzip": (b"\x1f\x8b", lambda: zlib.decompressobj(wbits=31)),
    "bzip2": (b"BZh", bz2.BZ2Decompressor),
    "xz": (b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
    # One frame at a time, as gzip members; zstd's own limit on a frame's window bounds memory.
    "zstd": (b"\x28\xb5\x2f\xfd", zstd.ZstdDecompressor),
}
_ZLIB_STREAM = type(zlib.decompressobj())
# An Excel 97-2003 workbook (.xls): an OLE2 compound file. It is stored as it is.
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAGIC_BYTES = len(_OLE2)


def compression_of(head: bytes) -> str | None:
    for name, (magic, _) in _FORMATS.items():
        if head.startswith(magic):
            return name
    return "zip" if head.startswith(ZIP_MAGIC) else None


class Unpacker:
    """Writes what it is given to `sink`, unpacked if its first bytes say it is packed."""

    def __init__(self, sink: BinaryIO, limits: UnpackLimits) -> None:
        self.sink, self.max_bytes, self.max_ratio = sink, limits.max_bytes, limits.max_ratio
        self.head = b""
        self.compression: str | None = None
        self.decided = False
        self.stream: _Decompressor | None = None
        self.zip: ZipStream | None = None
        self.ole2 = False
        self.received = 0
        self.written = 0  # unpacked
        self.kept = 0  # of which written to the sink

    def write(self, piece: bytes) -> None:
        self.received += len(piece)
        if not self.decided:
            self.head += piece
            if len(self.head) < MAGIC_BYTES:
                return
            piece, self.head = self.head, b""
            self._decide(piece)
        self._take(piece)

    def finish(self) -> None:
        """The end of the upload: what is left, and a check that the stream was whole."""
        if not self.decided:
            piece, self.head = self.head, b""
            self._decide(piece)
            self._take(piece)
        if self.zip is not None:
            self.zip.finish()
        if self.stream is not None and not self.stream.eof:
            raise ApiError(
                422,
                "truncated_archive",
                f"the {self.compression} file ends before its compressed data does",
            )

    @property
    def spreadsheet(self) -> bool:
        """Whether the file is a workbook (xlsx, ods, xls): stored as sent, read later."""
        return self.ole2 or (self.zip is not None and self.zip.document)

    def _decide(self, head: bytes) -> None:
        self.decided = True
        self.compression = compression_of(head)
        self.ole2 = head.startswith(_OLE2)
        if self.compression == "zip":
            self.zip = ZipStream(self._out, STEP)
        elif self.compression is not None:
            self.stream = _FORMATS[self.compression][1]()

    def _take(self, piece: bytes) -> None:
        if self.zip is not None:
            self.zip.feed(piece)
        elif self.compression is None:
            self._out(piece)
        else:
            self._unpack(piece)

    def _unpack(self, data: bytes) -> None:
        while data:
            assert self.stream is not None
            if self.stream.eof:  # the next member of a multi-member file
                if not data.strip(b"\x00"):
                    return  # padding after the last member
                self.stream = _FORMATS[str(self.compression)][1]()
            self._drain(self.stream, data)
            data = self.stream.unused_data if self.stream.eof else b""

    def _drain(self, stream: _Decompressor, data: bytes) -> None:
        """All that `data` unpacks to, a step at a time (each step is checked)."""
        self._out(stream.decompress(data, STEP))
        if isinstance(stream, _ZLIB_STREAM):
            while stream.unconsumed_tail and not stream.eof:
                self._out(stream.decompress(stream.unconsumed_tail, STEP))
            return
        while not stream.eof and not getattr(stream, "needs_input", True):
            self._out(stream.decompress(b"", STEP))

    def _out(self, data: bytes, keep: bool = True) -> None:
        """Unpacked bytes: counted against the limits, and written if they are kept."""
        self.written += len(data)
        if self.written > self.max_bytes:
            raise ApiError(
                413,
                "uncompressed_too_large",
                f"the file unpacks to more than the limit of {self.max_bytes} bytes",
                headers=BODY_LEFT_UNREAD,
            )
        if self.written > RATIO_FLOOR and self.written > self.max_ratio * self.received:
            raise ApiError(
                413,
                "compression_ratio",
                f"the file unpacks to more than {self.max_ratio:g} times its size: a "
                "compression bomb, or data too repetitive to be a CSV export",
                headers=BODY_LEFT_UNREAD,
            )
        if data and keep:
            self.sink.write(data)
            self.kept += len(data)
