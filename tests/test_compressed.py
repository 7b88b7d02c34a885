"""Compressed uploads: gzip, bzip2, xz, zstd and zip, known by their first bytes, unpacked into
storage as they stream; compression bombs refused while they stream, leaving nothing."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from server.api.errors import ApiError
from server.api.unpack import Unpacker, UnpackLimits, zstd
from tests.conftest import MakeTable, stored_files
from tests.harness import Database, Process
from tests.support import (
    CUSTOMER_COLUMNS,
    CUSTOMERS_DDL,
    csv_bytes,
    customer_rows,
    upload,
    wait_for_job,
)

PLAIN = csv_bytes(CUSTOMER_COLUMNS, customer_rows(20_000), newline="\r\n")
PACKERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstd.compress,
    "zstd, two frames": lambda data: zstd.compress(data[:100_000]) + zstd.compress(data[100_000:]),
    # `cat a.gz b.gz`: a file of two gzip members, as gzip itself reads it.
    "gzip, two members": lambda data: gzip.compress(data[:100_000]) + gzip.compress(data[100_000:]),
}


@pytest.mark.parametrize("packer", sorted(PACKERS))
def test_a_compressed_file_lands_the_same_table_as_the_plain_file(
    packer: str, client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    plain, packed = table(CUSTOMERS_DDL), table(CUSTOMERS_DDL)

    # A name that says nothing: the first bytes tell.
    first = upload(client, PLAIN, plain).json()
    second = upload(client, PACKERS[packer](PLAIN), packed, name="export.csv").json()
    jobs = [wait_for_job(client, job["id"]) for job in (first, second)]

    assert [(job["status"], job["rows_loaded"]) for job in jobs] == [("completed", 20_000)] * 2
    assert (jobs[1]["bytes_total"], jobs[1]["compression"]) == (len(PLAIN), packer.split(",")[0])
    assert db.fingerprint(packed) == db.fingerprint(plain)


def _bomb(packer: Callable[[bytes], bytes]) -> bytes:
    """256 MiB of one repeated line, packed to a few hundred kilobytes."""
    line = b"1,a@b.c,x,2024-01-01,1.00,FR,true,\n" * 30_000
    return packer(line * 256)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        pytest.param(lambda: _bomb(gzip.compress), 413, "compression_ratio", id="gzip bomb"),
        pytest.param(lambda: _bomb(zstd.compress), 413, "compression_ratio", id="zstd bomb"),
        pytest.param(lambda: gzip.compress(PLAIN)[:-5000], 422, "truncated_archive", id="cut"),
    ],
)
def test_a_bomb_or_a_cut_archive_is_refused_and_leaves_no_file(
    content: Callable[[], bytes], status: int, code: str, client: httpx.Client, table: MakeTable
) -> None:
    before = stored_files()

    response = upload(client, content(), table(CUSTOMERS_DDL))

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert stored_files() == before


def _zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _zipped_as_a_stream(data: bytes) -> bytes:
    """What a zip written to a pipe looks like: sizes and CRC after the data (a data
    descriptor), and zip64 fields."""

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, piece: Any) -> int:
            self.data += piece
            return len(piece)

    pipe = Pipe()
    with (
        zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("export.csv", "w", force_zip64=True) as member,
    ):
        member.write(data)
    return bytes(pipe.data)


def _zipped_by_the_zip_tool(data: bytes) -> bytes:
    if shutil.which("zip") is None:
        pytest.skip("the zip tool is not installed")
    # From a pipe to a pipe (`… | zip - - | …`): a data descriptor after the data.
    return subprocess.run(["zip", "-q", "-", "-"], input=data, capture_output=True).stdout


def _unpacked(content: bytes, piece: int) -> tuple[bytes, Unpacker]:
    sink = io.BytesIO()
    unpacker = Unpacker(sink, UnpackLimits())
    for start in range(0, len(content), piece):
        unpacker.write(content[start : start + piece])
    unpacker.finish()
    return sink.getvalue(), unpacker


ZIPS: dict[str, Callable[[bytes], bytes]] = {
    "deflated": lambda data: _zipped({"export.csv": data}),
    "stored": lambda data: _zipped({"export.csv": data}, zipfile.ZIP_STORED),
    "streamed, zip64": _zipped_as_a_stream,
    "by the zip tool": _zipped_by_the_zip_tool,
    "in a folder, with macOS's shadow files": lambda data: _zipped(
        {"export/": b"", "export/data.csv": data, "__MACOSX/export/._data.csv": b"\0" * 300}
    ),
}


@pytest.mark.parametrize("kind", sorted(ZIPS))
@pytest.mark.parametrize("piece", [7, 65_536])
def test_a_zip_with_one_file_gives_that_file(kind: str, piece: int) -> None:
    content = ZIPS[kind](PLAIN[:200_000])

    unpacked, unpacker = _unpacked(content, piece)

    assert unpacked == PLAIN[:200_000]
    assert (unpacker.compression, unpacker.kept, unpacker.spreadsheet) == ("zip", 200_000, False)


def _corrupted(data: bytes) -> bytes:
    content = bytearray(_zipped({"export.csv": data}, zipfile.ZIP_STORED))
    content[100] ^= 0xFF
    return bytes(content)


def _encrypted(data: bytes) -> bytes:
    content = bytearray(_zipped({"export.csv": data}))
    content[6] |= 0x1  # the flag that says the entry is encrypted
    return bytes(content)


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda data: _zipped({"a.csv": data, "b.csv": data}), 422, "zip_many_files"),
        (lambda data: _zipped({}), 422, "empty_archive"),
        (lambda data: _zipped({"folder/": b""}), 422, "empty_archive"),
        (lambda data: _zipped({"a.csv": data})[:-200], 422, "truncated_archive"),
        (lambda data: _zipped({"a.csv": data})[:5000], 422, "truncated_archive"),
        (_corrupted, 422, "corrupt_archive"),
        (_encrypted, 422, "encrypted_archive"),
        (lambda data: _zipped({"a.csv": data}, zipfile.ZIP_BZIP2), 415, "unsupported_compression"),
        (lambda data: _zipped({"a.csv": data}, zipfile.ZIP_LZMA), 415, "unsupported_compression"),
    ],
    ids=[
        "two files",
        "no file",
        "only a folder",
        "no central directory",
        "cut in the data",
        "checksum",
        "encrypted",
        "bzip2",
        "lzma",
    ],
)
def test_a_zip_that_is_not_one_whole_file_is_refused(
    make: Callable[[bytes], bytes], status: int, code: str
) -> None:
    with pytest.raises(ApiError) as refused:
        _unpacked(make(PLAIN[:50_000]), 4096)

    assert (refused.value.status, refused.value.body["code"]) == (status, code)


def test_a_zipped_file_lands_the_same_table_and_a_zip_of_two_leaves_nothing(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    plain, zipped = table(CUSTOMERS_DDL), table(CUSTOMERS_DDL)
    before = stored_files()

    refused = upload(client, _zipped({"a.csv": PLAIN, "b.csv": PLAIN}), zipped, name="two.zip")
    left = stored_files() - before
    jobs = [
        wait_for_job(client, upload(client, content, name, name="export.zip").json()["id"])
        for content, name in ((PLAIN, plain), (_zipped({"export.csv": PLAIN}), zipped))
    ]

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "zip_many_files"
    assert [(job["status"], job["rows_loaded"]) for job in jobs] == [("completed", 20_000)] * 2
    assert [job["compression"] for job in jobs] == [None, "zip"]
    assert db.fingerprint(zipped) == db.fingerprint(plain)
    assert left == set()
