"""Compressed uploads, unpacked while they stream into storage.

A file compressed with gzip, bzip2 or xz is recognised by its first bytes (its magic
number), whatever its name, and what lands in storage is the CSV inside it: the workers,
their checkpoints and the refused rows' byte offsets then know only the plain file. A
compression bomb is refused while it streams, as soon as the unpacked bytes pass
`MAX_UNCOMPRESSED_BYTES` or, beyond the first megabytes, `MAX_COMPRESSION_RATIO` times what
has arrived: the sender's few kilobytes never become the disk's terabyte.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from server.api.errors import BODY_LEFT_UNREAD, ApiError

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
}
_ZLIB_STREAM = type(zlib.decompressobj())
MAGIC_BYTES = max(len(magic) for magic, _ in _FORMATS.values())


def compression_of(head: bytes) -> str | None:
    for name, (magic, _) in _FORMATS.items():
        if head.startswith(magic):
            return name
    return None


class Unpacker:
    """Writes what it is given to `sink`, unpacked if its first bytes say it is packed."""

    def __init__(self, sink: BinaryIO, limits: UnpackLimits) -> None:
        self.sink, self.max_bytes, self.max_ratio = sink, limits.max_bytes, limits.max_ratio
        self.head = b""
        self.compression: str | None = None
        self.decided = False
        self.stream: _Decompressor | None = None
        self.received = 0
        self.written = 0

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
        if self.stream is not None and not self.stream.eof:
            raise ApiError(
                422,
                "truncated_archive",
                f"the {self.compression} file ends before its compressed data does",
            )

    def _decide(self, head: bytes) -> None:
        self.decided = True
        self.compression = compression_of(head)
        if self.compression is not None:
            self.stream = _FORMATS[self.compression][1]()

    def _take(self, piece: bytes) -> None:
        if self.compression is None:
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

    def _out(self, data: bytes) -> None:
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
        if data:
            self.sink.write(data)
