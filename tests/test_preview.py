"""POST /imports/preview: the head of a file read as an upload would be, with nothing stored,
no job made, and every cell judged as the load judges it."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.csvfile.head import HEADER_LIMIT
from tests.conftest import ENV, MakeTable, stored_files
from tests.harness import Database, bearer, free_port, start_api
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows

RENAMED = ["id", "email", "full_name", "signup_date", "amount", "country", "active", "notes"]


def preview(client: httpx.Client, content: bytes, target: str, **fields: str) -> httpx.Response:
    return client.post(
        "/imports/preview",
        files={"file": ("data.csv", content, "text/csv")},
        data={"target": target, **fields},
    )


def jobs_of(client: httpx.Client) -> list[str]:
    return [job["id"] for job in client.get("/imports", params={"limit": 500}).json()["items"]]


def test_a_header_that_differs_from_the_table_is_shown_before_anything_lands(
    client: httpx.Client, table: MakeTable, db: Database
) -> None:
    target = table()
    content = csv_bytes(RENAMED, customer_rows(50))
    jobs, files = jobs_of(client), stored_files()
    answer = preview(client, content, target)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    by_header = {m["header"]: m for m in found["mapping"]}
    assert by_header["full_name"] == {"header": "full_name", "column": None, "matched_by": None}
    assert by_header["amount"]["column"] is None
    assert by_header["email"] == {"header": "email", "column": "email", "matched_by": "name"}
    assert {c["name"] for c in found["unfilled"]} == {"name", "balance"}
    assert found["problem"] is None  # it would be accepted, with two columns left empty
    assert found["header"] == RENAMED
    assert (found["encoding"], found["delimiter"], found["line_terminator"]) == (
        "utf-8",
        ",",
        "LF",
    )
    assert found["bytes_total"] == found["bytes_read"] == len(content)
    assert len(found["rows"]) == 20
    first = found["rows"][0]
    assert first["line"] == 2
    assert first["problems"] == []
    assert set(first["values"]) == {"id", "email", "signup_date", "country", "active", "notes"}
    # Nothing was stored, no job was made, the table is untouched.
    assert jobs_of(client) == jobs
    assert stored_files() == files
    assert db.value(f"SELECT count(*) FROM {target}") == 0


def test_the_mapping_field_and_normalised_names_are_shown_as_such(
    client: httpx.Client, table: MakeTable
) -> None:
    header = ["ID", " Email ", "full_name", "Signup Date", "amount"]
    content = csv_bytes(header, [["1", "a@example.com", "Ann", "2024-02-29", "12.50"]])
    mapping = '{"full_name": "name", "amount": "balance"}'
    found = preview(client, content, table(), mapping=mapping).json()
    assert [(m["column"], m["matched_by"]) for m in found["mapping"]] == [
        ("id", "normalised name"),
        ("email", "normalised name"),
        ("name", "mapping"),
        ("signup_date", "normalised name"),
        ("balance", "mapping"),
    ]
    assert found["rows"][0]["values"] == {
        "id": "1",
        "email": "a@example.com",
        "name": "Ann",
        "signup_date": "2024-02-29",
        "balance": "12.50",
    }
    assert {c["name"] for c in found["unfilled"]} == {"country", "active", "notes"}


def test_each_cell_is_judged_as_the_load_judges_it(client: httpx.Client, table: MakeTable) -> None:
    rows = [
        ["1", "a@example.com", "Ann", "2024-02-30", "1,5", "DE", "yes", "x"],
        ["2", "", "Bob", "2024-01-01", "7", "FR", "no", "tab\there"],
        ["9" * 40, "c@example.com", "", "2024-01-02", "1e999999", "GB", "maybe", ""],
        ["4", "d@example.com", "Dee", "2024-01-03", "3.25", "ES", "TRUE", ""],
    ]
    found = preview(client, csv_bytes(CUSTOMER_COLUMNS, rows), table()).json()
    problems = [{(p["column"], p["code"]) for p in row["problems"]} for row in found["rows"]]
    assert problems[0] == {("signup_date", "not_date"), ("balance", "not_number")}
    assert problems[1] == {("email", "not_null")}
    assert {"id", "balance", "active"} <= {column for column, _ in problems[2]}
    assert problems[3] == set()
    # A refused row shows the cells as the file writes them; an accepted one as PostgreSQL
    # will be given them (an empty cell is NULL, booleans and numbers as they are read).
    assert found["rows"][1]["values"]["notes"] == "tab\there"
    assert found["rows"][3]["values"] == {
        "id": "4",
        "email": "d@example.com",
        "name": "Dee",
        "signup_date": "2024-01-03",
        "balance": "3.25",
        "country": "ES",
        "active": "TRUE",
        "notes": None,
    }


def test_what_an_upload_would_be_refused_for_is_said_and_the_mapping_still_shown(
    client: httpx.Client, table: MakeTable
) -> None:
    content = csv_bytes(["identifier", "mail", "name"], [["1", "a@example.com", "Ann"]])
    answer = preview(client, content, table())
    assert answer.status_code == 200
    found = answer.json()
    assert found["problem"]["code"] == "missing_columns"
    assert {c["name"] for c in found["unfilled"] if c["required"]} == {"id", "email"}
    assert [m["column"] for m in found["mapping"]] == [None, None, "name"]
    # The same fields, uploaded, are refused for that reason.
    refused = client.post(
        "/imports",
        files={"file": ("data.csv", content, "text/csv")},
        data={"target": found["target"]["name"]},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "missing_columns"


def test_a_compressed_file_is_previewed_unpacked_and_detection_is_reported(
    client: httpx.Client, table: MakeTable
) -> None:
    rows = [["1", "a@example.com", "Zoë", "03.02.2024", "1.234,50", "DE", "true", "ü"]]
    content = csv_bytes(CUSTOMER_COLUMNS, rows, delimiter=";", encoding="cp1252", newline="\r\n")
    found = preview(client, gzip.compress(content), table()).json()
    assert found["compression"] == "gzip"
    assert (found["delimiter"], found["line_terminator"]) == (";", "CRLF")
    assert (found["decimal"], found["date_format"]) == (",", "DD.MM.YYYY")
    values = found["rows"][0]["values"]
    assert (values["name"], values["balance"], values["signup_date"]) == (
        "Zoë",
        "1234.50",
        "2024-02-03",
    )


def test_bad_requests_get_the_uploads_errors(client: httpx.Client, table: MakeTable) -> None:
    target = table()
    assert preview(client, b"", target).json()["error"]["code"] == "empty_file"
    unknown = preview(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(1)), "nope.nothing")
    assert unknown.json()["error"]["code"] == "unknown_target"
    no_file = client.post("/imports/preview", data={"target": target}, files={"x": ("", b"")})
    assert no_file.json()["error"]["code"] in {"missing_file", "unknown_field"}
    assert client.post("/imports/preview").status_code == 415


# --- a gigabyte, in bounded memory ----------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def big_api(log_dir: Path, api_key: str) -> Iterator[tuple[str, int]]:
    """An API of its own that takes uploads of a few GiB."""
    env = dict(os.environ, MAX_UPLOAD_BYTES=str(4 << 30))
    port = free_port()
    process = start_api(env, log_dir, port)
    try:
        yield f"http://127.0.0.1:{port}", process.pids()[0]
    finally:
        process.stop()


def multipart(target: str, size: int, boundary: str = "previewboundary") -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\n{target}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"'
        "\r\nContent-Type: text/csv\r\n\r\n"
    ).encode()
    yield csv_bytes(CUSTOMER_COLUMNS, [])
    block = csv_bytes(CUSTOMER_COLUMNS, customer_rows(10_000))
    block = block[block.index(b"\n") + 1 :]
    sent = 0
    while sent < size:
        yield block
        sent += len(block)
    yield f"\r\n--{boundary}--\r\n".encode()


def test_a_gigabyte_upload_is_previewed_from_its_head_in_bounded_memory(
    big_api: tuple[str, int], api_key: str, table: MakeTable
) -> None:
    url, pid = big_api
    target = table()
    before = peak_rss_mb(pid)
    with httpx.Client(base_url=url, headers=bearer(api_key), timeout=600) as client:
        answer = client.post(
            "/imports/preview",
            content=multipart(target, 1 << 30),
            headers={"content-type": "multipart/form-data; boundary=previewboundary"},
        )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    assert found["bytes_total"] > 1 << 30
    assert found["bytes_read"] == HEADER_LIMIT + 1
    assert len(found["rows"]) == 20
    assert all(row["problems"] == [] for row in found["rows"])
    grew = peak_rss_mb(pid) - before
    assert grew < 64, f"the API's peak memory grew by {grew:.0f} MB"
    assert not list(Path(ENV["UPLOAD_DIR"]).glob("*.part"))


def test_a_header_that_fills_no_column_still_previews(
    client: httpx.Client, table: MakeTable
) -> None:
    content = b"id,email\n1,a@example.com\n"
    found = preview(client, content, table(), delimiter="|").json()  # one field: "id,email"
    assert found["problem"]["code"] == "no_matching_columns"
    assert found["rows"] == [{"line": 2, "values": {}, "problems": []}]
