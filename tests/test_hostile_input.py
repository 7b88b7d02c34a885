"""Hostile input: files and requests made to break the service. Each gets a clear error or
clear refused rows; the API and the worker stay up; a refused upload leaves no job, no
message and no file; a target is never partly changed; nothing is written outside
UPLOAD_DIR."""

from __future__ import annotations

import io
import json
import os
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx
import pytest
from kombu import Connection

from server.api.accept import read_header
from server.api.errors import ApiError
from server.api.options import parse_options
from server.csvfile.detect import Layout
from server.csvfile.reader import RecordReader
from server.storage import Storage
from tests.conftest import ARTIFACTS, ENV, MakeTable
from tests.harness import Database, Process, bearer, free_port, start_api, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job
from tests.test_api import state

GIB = 1 << 30
MIB = 1 << 20
IDLE_SECONDS = 2
NAMES = "(id int, name text)"
GOOD = csv_bytes(CUSTOMER_COLUMNS, customer_rows(3))


@pytest.fixture(scope="module")
def roomy_api(prepared: None, log_dir: Path) -> Iterator[tuple[str, Process]]:
    """An API that takes uploads of several gigabytes and gives up on a stalled one soon."""
    port = free_port()
    env = dict(os.environ, MAX_UPLOAD_BYTES=str(4 * GIB), UPLOAD_IDLE_SECONDS=str(IDLE_SECONDS))
    process = start_api(env, log_dir, port)
    yield f"http://127.0.0.1:{port}", process
    process.stop()


def multipart_head(boundary: str, target: str, filename: str = "data.csv") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\n{target}'
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
    ).encode()


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def assert_healthy(base_url: str) -> None:
    assert httpx.get(f"{base_url}/health", timeout=30).status_code == 200


# --- one line of a gigabyte -------------------------------------------------------------


def test_a_gigabyte_on_one_line_without_a_newline_is_refused_as_a_header(
    roomy_api: tuple[str, Process],
    db: Database,
    broker: Connection,
    table: MakeTable,
    api_key: str,
) -> None:
    base_url, _ = roomy_api
    target, boundary = table(), "gigabyte"
    before = state(db, broker)

    def body() -> Iterator[bytes]:
        yield multipart_head(boundary, target)
        block = b"a" * MIB
        for _ in range(GIB // MIB):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{base_url}/imports",
        content=body(),
        timeout=300,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **bearer(api_key)},
    )

    error = assert_refused(response, 422, "header_too_long")
    assert error["line"] == 1
    assert state(db, broker) == before
    assert_healthy(base_url)


class Endless(io.RawIOBase):
    """A file of `size` bytes of one line, made up while it is read (never in memory)."""

    def __init__(self, head: bytes, size: int, tail: bytes) -> None:
        self.head, self.size, self.tail = head, size, tail
        self.position = 0
        self.length = len(head) + size + len(tail)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.length}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        """Head and tail bytes where they fall, `x` in between."""
        end = min(self.position + len(buffer), self.length)
        out = bytearray(b"x" * (end - self.position))
        for start, part in ((0, self.head), (len(self.head) + self.size, self.tail)):
            low, high = max(self.position, start), min(end, start + len(part))
            if low < high:
                out[low - self.position : high - self.position] = part[low - start : high - start]
        buffer[: len(out)] = out
        self.position = end
        return len(out)


class OneFile:
    """Storage holding one file, whatever its key."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def open(self, key: str) -> BinaryIO:
        return self.file


def test_the_header_check_reads_the_first_megabyte_of_a_gigabyte_line_and_no_more() -> None:
    raw = Endless(b"", GIB, b"")
    with pytest.raises(ApiError) as refused:
        read_header(
            cast(Storage, OneFile(io.BufferedReader(raw, MIB))),
            "data.csv",
            parse_options({"target": "customers"}),
        )
    assert refused.value.body["code"] == "header_too_long"
    assert raw.position <= 2 * MIB


def test_a_gigabyte_line_among_rows_is_one_refused_record_read_in_bounded_memory() -> None:
    file: BinaryIO = io.BufferedReader(Endless(b"id,name\n1,", GIB, b"\n2,after\n"), MIB)
    layout = Layout("utf-8", 0, "\n", ",")
    tracemalloc.start()
    try:
        records = list(RecordReader(file, layout, 0, 1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(r.line, r.problem) for r in records] == [(1, None), (2, "line_too_long"), (3, None)]
    assert records[2].fields == ["2", "after"]
    assert len(records[1].raw) <= 1000, "a refused line keeps a preview, not a gigabyte"
    assert records[1].end_offset == len(b"id,name\n1,") + GIB + 1
    assert peak < 64 * MIB, f"peak memory {peak // MIB} MiB"


# --- wide, long and strange contents -----------------------------------------------------


def test_a_header_of_ten_thousand_columns_is_matched_and_its_rows_land(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
) -> None:
    target = table(NAMES)
    extra = [f"extra_column_{i:05d}" for i in range(9_998)]
    header = ["id", *extra[:5_000], "name", *extra[5_000:]]
    rows = [[str(i), *(["x"] * 5_000), f"name {i}", *(["y"] * 4_998)] for i in range(1, 4)]
    # Semicolons, and a header longer than the bytes the delimiter is guessed from.
    content = csv_bytes(header, rows, delimiter=";")

    response = upload(client, content, target)
    assert response.status_code == 202, response.text
    assert (response.json()["delimiter"], len(response.json()["extra_columns"])) == (";", 9_998)
    job = wait_for_job(client, response.json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 3, 0)
    assert db.rows(f"SELECT * FROM {target} ORDER BY id") == [
        (1, "name 1"),
        (2, "name 2"),
        (3, "name 3"),
    ]


def test_a_ten_megabyte_field_lands_and_an_over_long_line_is_one_refused_row(
    roomy_api: tuple[str, Process],
    worker: Process,
    table: MakeTable,
    db: Database,
    api_key: str,
) -> None:
    client = httpx.Client(base_url=roomy_api[0], headers=bearer(api_key), timeout=60)
    target, reference = table(NAMES), table(NAMES)
    big = "é" * (5 * MIB)  # ten megabytes of UTF-8
    fits = csv_bytes(["id", "name"], [["1", "before"], ["2", big], ["3", "after"]])
    db.reference(reference, fits)
    content = fits + b"4," + b"z" * (17 * MIB) + b"\n5,last\n"
    db.execute(f"INSERT INTO {reference} VALUES (5, 'last')")

    job = wait_for_job(client, upload(client, content, target).json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 4, 1)
    assert db.checksum(target) == db.checksum(reference)
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["code"]) for r in refused] == [(5, "line_too_long")]
    assert len(refused[0]["raw"]) <= 1000


def test_nul_bytes_are_refused_with_their_line_or_the_file_is_not_text(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
) -> None:
    target = table(NAMES)
    in_head = upload(client, b"id,name\n1,a\x00b\n", target)
    assert_refused(in_head, 415, "not_text")

    rows = [[str(i), f"row {i}"] for i in range(1, 5001)]
    content = csv_bytes(["id", "name"], rows) + b"5001,nul \x00 here\n5002,fine\n"
    job = wait_for_job(client, upload(client, content, target).json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 5001, 1)
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["column"], r["code"]) for r in refused] == [
        (5002, "name", "nul_character")
    ]
    assert db.value(f"SELECT count(*) FROM {target}") == 5001


def test_invalid_utf8_in_the_middle_of_a_utf8_file_is_one_refused_row(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
) -> None:
    target, reference = table(NAMES), table(NAMES)
    good = [[str(i), f"Zoë ✓ {i}"] for i in range(1, 201)]
    content = (
        csv_bytes(["id", "name"], good[:100])
        + b"1000,bad \xff\xfe byte\n"
        + csv_bytes(["id", "name"], good[100:]).split(b"\n", 1)[1]
    )
    db.reference(reference, csv_bytes(["id", "name"], good))

    response = upload(client, content, target)
    assert response.json()["encoding"] == "utf-8", "one bad byte does not make it cp1252"
    job = wait_for_job(client, response.json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 200, 1)
    assert db.checksum(target) == db.checksum(reference)
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["code"]) for r in refused] == [(102, "encoding")]


def test_a_quote_left_open_early_in_a_large_file_is_one_refused_row_from_its_line(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
) -> None:
    target, reference = table(NAMES), table(NAMES)
    good = csv_bytes(["id", "name"], [[str(i), f"row {i}"] for i in range(1, 3001)])
    db.reference(reference, good)
    content = good + b'3001,"open\n' + b"3002,swallowed\n" * 2000

    job = wait_for_job(client, upload(client, content, target).json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 3000, 1)
    assert db.checksum(target) == db.checksum(reference)
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["code"]) for r in refused] == [(3002, "unterminated_quote")]


def test_mixed_line_endings_land_and_a_bare_carriage_return_is_refused(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
) -> None:
    target = table(NAMES)
    content = b'id,name\r\n1,crlf\r\n2,lf\n3,crlf again\r\n4,cr\r5,lf after cr\n6,"quoted\rcr"\n'

    job = wait_for_job(client, upload(client, content, target).json()["id"])

    assert job["status"] == "completed", job
    assert db.rows(f"SELECT * FROM {target} ORDER BY id") == [
        (1, "crlf"),
        (2, "lf"),
        (3, "crlf again"),
        (6, "quoted\rcr"),
    ]
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["code"]) for r in refused] == [(5, "malformed")]


# --- hostile requests ---------------------------------------------------------------------

HOSTILE_NAMES = [
    "../../../../tmp/escaped.csv",
    "/etc/passwd",
    "..\\..\\windows\\system32\\x.csv",
    "$(touch /tmp/pwned); `id` | rm -rf ~ & echo > /tmp/x.csv",
    "a" * 1000 + ".csv",
    "nul\x00byte.csv",
    ".hidden",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_a_hostile_filename_is_kept_as_a_label_and_the_file_stored_under_a_name_of_ours(
    client: httpx.Client,
    table: MakeTable,
    name: str,
) -> None:
    uploads = Path(ENV["UPLOAD_DIR"])
    around = {p.name for p in ARTIFACTS.iterdir()}
    before = set(os.listdir(uploads))

    response = upload(client, GOOD, table(), name=name)

    assert response.status_code == 202, response.text
    job = response.json()
    assert set(os.listdir(uploads)) - before == {f"{job['id']}.csv"}
    assert (uploads / f"{job['id']}.csv").read_bytes() == GOOD
    assert {p.name for p in ARTIFACTS.iterdir()} == around
    assert len(job["file_name"]) <= 255
    assert not Path("/tmp/escaped.csv").exists()  # noqa: S108 - where an escape would land
    assert not Path("/tmp/pwned").exists()  # noqa: S108


def test_a_filename_too_long_for_a_part_header_is_a_malformed_body_and_leaves_nothing(
    client: httpx.Client,
    db: Database,
    broker: Connection,
    table: MakeTable,
) -> None:
    before = state(db, broker)
    response = upload(client, GOOD, table(), name="a" * 100_000 + ".csv")
    error = assert_refused(response, 400, "malformed_body")
    assert "header" in error["message"]
    assert state(db, broker) == before


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, GOOD, 415, "not_multipart"),
        ({"Content-Type": "text/csv"}, GOOD, 415, "not_multipart"),
        ({"Content-Type": "multipart/form-data"}, GOOD, 415, "not_multipart"),
        (
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"target=x&file=1,2",
            415,
            "not_multipart",
        ),
        (
            {"Content-Type": "multipart/form-data; boundary=other"},
            multipart_head("mine", "customers") + GOOD + b"\r\n--mine--\r\n",
            400,
            "malformed_body",
        ),
    ],
    ids=["none", "text/csv body", "no boundary", "form urlencoded", "wrong boundary"],
)
def test_a_wrong_or_missing_content_type_is_refused_and_leaves_nothing(
    client: httpx.Client,
    db: Database,
    broker: Connection,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    before = state(db, broker)
    response = client.post("/imports", content=body, headers=headers)
    assert_refused(response, status, code)
    assert state(db, broker) == before


def test_the_file_part_s_own_content_type_does_not_decide_the_content_does(
    client: httpx.Client,
    table: MakeTable,
) -> None:
    target = table()
    as_image = client.post(
        "/imports", files={"file": ("x.png", GOOD, "image/png")}, data={"target": target}
    )
    assert as_image.status_code == 202, as_image.text
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10
    as_csv = client.post(
        "/imports", files={"file": ("x.csv", png, "text/csv")}, data={"target": target}
    )
    assert_refused(as_csv, 415, "not_text")


def raw_request(base_url: str, body_length: int, key: str) -> socket.socket:
    """A connection that has sent the headers of an upload of `body_length` bytes."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        f"POST /imports HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data;"
        f" boundary=cut\r\nContent-Length: {body_length}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    return sock


def parts(uploads: Path) -> list[str]:
    return [p.name for p in uploads.iterdir() if p.name.endswith(".part")]


def test_a_client_gone_in_the_middle_of_the_body_leaves_no_job_and_no_file(
    api: str,
    db: Database,
    broker: Connection,
    table: MakeTable,
    api_key: str,
) -> None:
    uploads = Path(ENV["UPLOAD_DIR"])
    before = state(db, broker)
    sock = raw_request(api, 10 * MIB, api_key)
    sock.sendall(multipart_head("cut", table()) + GOOD + b"9,half a row," * 50_000)
    wait_until(lambda: parts(uploads), 10, "the upload never started")
    sock.close()

    wait_until(lambda: not parts(uploads), 10, "the half-written file stayed")
    assert state(db, broker) == before
    assert_healthy(api)


def test_a_stalled_upload_times_out_with_a_408_and_leaves_no_job_and_no_file(
    roomy_api: tuple[str, Process],
    db: Database,
    broker: Connection,
    table: MakeTable,
    api_key: str,
) -> None:
    base_url, _ = roomy_api
    uploads = Path(ENV["UPLOAD_DIR"])
    before = state(db, broker)
    sock = raw_request(base_url, 10 * MIB, api_key)
    sock.sendall(multipart_head("cut", table()) + GOOD)
    started = time.monotonic()

    answer = b""
    while chunk := sock.recv(65536):  # the server answers, then closes the connection
        answer += chunk
    sock.close()

    assert time.monotonic() - started < IDLE_SECONDS + 3
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert json.loads(body)["error"]["code"] == "upload_timeout"
    assert not parts(uploads)
    assert state(db, broker) == before
    assert_healthy(base_url)


# A table with every type the loader knows, a good row for it, and hostile values: each
# case is (column, value, whether PostgreSQL refuses it). The refused ones must each cost
# exactly their row; the others land with PostgreSQL's own reading.
EVERY_TYPE = {
    "line": "int",
    "i2": "int2",
    "i4": "int4",
    "i8": "int8",
    "n": "numeric",
    "n52": "numeric(5, 2)",
    "f4": "float4",
    "f8": "float8",
    "b": "boolean",
    "d": "date",
    "ts": "timestamp",
    "tstz": "timestamptz",
    "t": "time",
    "u": "uuid",
    "j": "json",
    "jb": "jsonb",
    "tx": "text",
    "vc": "varchar(5)",
    "ch": "char(3)",
    "e": "importtest.hostile_mood",
}
GOOD_ROW = {
    "i2": "7",
    "i4": "42",
    "i8": "-9000000000",
    "n": "3.14159",
    "n52": "123.45",
    "f4": "1.5",
    "f8": "2.25e10",
    "b": "true",
    "d": "2024-02-29",
    "ts": "2024-01-02 03:04:05.123456",
    "tstz": "2024-01-02T03:04:05Z",
    "t": "12:30:00",
    "u": "12345678-1234-5678-1234-567812345678",
    "j": '"{""a"": [1, 2]}"',
    "jb": '"{""b"": null}"',
    "tx": "plain text",
    "vc": "abc",
    "ch": "FR",
    "e": "happy",
}
DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE = [
    ("i8", "1" + "0" * 5000, True),
    ("n52", "1e999999", True),
    ("n", "1e-999999", True),
    ("n52", "9" * 5000, True),
    ("j", DEEP, True),
    ("jb", DEEP, True),
    ("jb", '"""\\u0000"""', True),
    ("i4", "\u0661\u0662\u0663", True),
    ("i2", "32768", True),
    ("f4", "1e39", True),
    ("f8", "1e999", True),
    ("b", "maybe", True),
    ("d", "31/12/2024", True),
    ("d", "today", True),
    ("d", "2023-02-29", True),
    ("ts", "2020-01-01T00:00:00+02:00", True),
    ("t", "25:00:00", True),
    ("u", "not-a-uuid", True),
    ("vc", "too long", True),
    ("ch", "FRAN", True),
    ("e", "meh", True),
    ("tx", "nul\x00byte", True),
    ("i4", " 42 ", False),
    ("i8", "+0017", False),
    ("n52", "1.005", False),
    ("n", "1e3", False),
    ("f8", "1.5e300", False),
    ("f4", "-Infinity", False),
    ("b", "YE", False),
    ("d", "Jan 2 2024", False),
    ("ts", "2020-01-01T00:00:00.1234567", False),
    ("tstz", "2024-01-01 10:00 EST", False),
    ("u", "{12345678-1234-5678-1234-567812345678}", False),
    ("jb", '"{""a"":1,""a"":2}"', False),
    ("vc", "abc   ", False),
    ("n", "NaN", False),
]
# The values thousands of characters long go in a few rows only: the file stays ~200 MB.
RARE = {case for case in HOSTILE if len(case[1]) > 1000}


def hostile_lines(rows: int, every: int) -> Iterator[tuple[str, bool]]:
    """The file's data lines, and whether each must be refused. The first thousand lines
    are good: a NUL byte among a file's first bytes makes it not a text file at all."""
    common = [case for case in HOSTILE if case not in RARE]
    rare_at = {every * (n + 1) * 997: case for n, case in enumerate(sorted(RARE))}
    for line in range(2, rows + 2):
        values = dict(GOOD_ROW)
        refused = False
        case = rare_at.get(line) or (
            common[(line // every) % len(common)] if line % every == 0 and line > 1000 else None
        )
        if case is not None:
            column, value, refused = case
            values[column] = value
        yield ",".join([str(line), *(values[name] for name in GOOD_ROW)]) + "\n", refused


def test_a_million_rows_with_every_kind_of_hostile_value_complete_refusing_exactly_those(
    roomy_api: tuple[str, Process],
    worker: Process,
    table: MakeTable,
    db: Database,
    api_key: str,
    tmp_path: Path,
) -> None:
    rows, every = 1_000_000, 10
    db.execute(
        "DO $$ BEGIN CREATE TYPE importtest.hostile_mood AS ENUM ('happy', 'sad'); "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    ddl = "(" + ", ".join(f"{name} {kind}" for name, kind in EVERY_TYPE.items()) + ")"
    target, reference = table(ddl), table(ddl)
    header = ",".join(EVERY_TYPE) + "\n"
    path, fine = tmp_path / "hostile.csv", tmp_path / "fine.csv"
    expected = []
    with path.open("w", encoding="utf-8") as all_lines, fine.open("w") as kept:
        all_lines.write(header)
        kept.write(header)
        for text, refused in hostile_lines(rows, every):
            all_lines.write(text)
            if refused:
                expected.append(int(text.split(",", 1)[0]))
            else:
                kept.write(text)
    with db.connect() as connection, connection.cursor() as cursor, fine.open("rb") as source:
        cursor.execute("SET datestyle = 'ISO, MDY'; SET timezone = 'UTC'")
        cursor.copy_expert(f"COPY {reference} FROM STDIN WITH (FORMAT csv, HEADER true)", source)

    client = httpx.Client(base_url=roomy_api[0], headers=bearer(api_key), timeout=600)
    with path.open("rb") as content:
        accepted = client.post(
            "/imports",
            files={"file": ("hostile.csv", content, "text/csv")},
            data={"target": target},
        )
    assert accepted.status_code == 202, accepted.text
    job = wait_for_job(client, accepted.json()["id"], timeout=900)

    assert job["status"] == "completed", job
    assert (job["rows_loaded"], job["rows_refused"]) == (rows - len(expected), len(expected))
    lines: list[int] = []
    after = 0
    while page := client.get(
        f"/imports/{job['id']}/errors", params={"after_line": after, "limit": 1000}
    ).json()["items"]:
        lines += [item["line"] for item in page]
        after = page[-1]["line"]
    assert lines == expected
    assert db.fingerprint(target) == db.fingerprint(reference)


def test_after_all_this_the_api_is_still_the_same_process_and_healthy(
    api_process: Process,
    api: str,
    roomy_api: tuple[str, Process],
) -> None:
    assert api_process.popen.poll() is None
    assert roomy_api[1].popen.poll() is None
    assert_healthy(api)
    assert_healthy(roomy_api[0])
