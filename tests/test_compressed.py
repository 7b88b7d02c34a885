"""Compressed uploads: gzip, bzip2 and xz, known by their first bytes, unpacked into
storage as they stream; compression bombs refused while they stream, leaving nothing."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENV, MakeTable
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
    # `cat a.gz b.gz`: a file of two gzip members, as gzip itself reads it.
    "gzip, two members": lambda data: gzip.compress(data[:100_000]) + gzip.compress(data[100_000:]),
}


def stored_files() -> set[Path]:
    return set(Path(ENV["UPLOAD_DIR"]).glob("*"))


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
    assert jobs[1]["bytes_total"] == len(PLAIN)
    assert db.fingerprint(packed) == db.fingerprint(plain)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        # 256 MiB of one repeated line packs to a few hundred kilobytes.
        (b"", 413, "compression_ratio"),
        (gzip.compress(PLAIN)[:-5000], 422, "truncated_archive"),
    ],
)
def test_a_bomb_or_a_cut_archive_is_refused_and_leaves_no_file(
    content: bytes, status: int, code: str, client: httpx.Client, table: MakeTable
) -> None:
    if not content:
        packer = zlib.compressobj(9, wbits=31)
        line = b"1,a@b.c,x,2024-01-01,1.00,FR,true,\n" * 30_000
        content = b"".join(packer.compress(line) for _ in range(256)) + packer.flush()
    before = stored_files()

    response = upload(client, content, table(CUSTOMERS_DDL))

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert stored_files() == before
