"""The HTTP API: clear errors that leave nothing behind, idempotency, paging, health."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection

from server.messaging.topology import EXPRESS_QUEUE, WORK_QUEUE
from tests.broker import message_count
from tests.conftest import ENV, MakeTable
from tests.harness import Database, Process
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

GOOD = csv_bytes(CUSTOMER_COLUMNS, customer_rows(3))
LIMIT = int(ENV["MAX_UPLOAD_BYTES"])


def state(db: Database, broker: Connection) -> tuple[int, int, list[str]]:
    """What an upload can leave behind: job rows, messages, stored files."""
    messages = message_count(broker, WORK_QUEUE) + message_count(broker, EXPRESS_QUEUE)
    return (
        db.value("SELECT count(*) FROM import_jobs"),
        messages,
        sorted(os.listdir(ENV["UPLOAD_DIR"])),
    )


def chunks(total: int) -> Iterator[bytes]:
    yield b"id,email\n"
    for _ in range(total // 65536 + 1):
        yield b"1,a@example.com\n" * 4096


BAD_UPLOADS: list[tuple[str, dict[str, Any], int, str]] = [
    ("unknown target", {"target": "importtest.nope"}, 422, "unknown_target"),
    ("not allowed target", {"target": "public.import_jobs"}, 422, "unknown_target"),
    ("bad target name", {"target": "a.b.c"}, 422, "unknown_target"),
    ("missing required column", {"content": b"id,name\n1,x\n"}, 422, "missing_columns"),
    ("empty file", {"content": b""}, 422, "empty_file"),
    ("header only", {"content": b"id,email\n"}, 422, "no_rows"),
    ("binary file", {"content": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10}, 415, "not_text"),
    ("duplicate header", {"content": b"id,email,ID\n1,a@x,2\n"}, 422, "duplicate_header"),
    ("unknown mode", {"mode": "replace"}, 422, "invalid_option"),
    ("bad mapping", {"mapping": '{"nope": "id"}'}, 422, "unknown_mapping"),
    ("a field with a typo", {"null_marker": "NA"}, 422, "unknown_field"),
    ("fields without end", {f"field{n}": "x" * 60_000 for n in range(40)}, 413, "too_many_fields"),
    (
        "too large",
        {"content": b"id,email\n" + b"1,a@x\n" * (LIMIT // 6 + 1)},
        413,
        "file_too_large",
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "status", "code"), BAD_UPLOADS, ids=[case[0] for case in BAD_UPLOADS]
)
def test_a_bad_upload_gets_a_clear_error_and_leaves_nothing_behind(
    client: httpx.Client,
    db: Database,
    broker: Connection,
    table: MakeTable,
    case: str,
    fields: dict[str, Any],
    status: int,
    code: str,
) -> None:
    target = fields.pop("target", table())
    content = fields.pop("content", GOOD)
    before = state(db, broker)

    response = upload(client, content, target, **fields)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert state(db, broker) == before


def test_an_unknown_field_is_named_with_the_fields_there_are(
    client: httpx.Client, table: MakeTable
) -> None:
    error = upload(client, GOOD, table(), dry_runn="true").json()["error"]
    assert (error["code"], error["field"]) == ("unknown_field", "dry_runn")
    assert {"file", "target", "null_markers", "mode"} <= set(error["fields"])


def test_missing_columns_are_named_with_the_line(client: httpx.Client, table: MakeTable) -> None:
    error = upload(client, b"id,name\n1,x\n", table()).json()["error"]
    assert (error["columns"], error["line"]) == (["email"], 1)
    assert "email" in error["message"]


def test_an_oversized_streamed_body_is_cut_off_while_streaming(
    client: httpx.Client,
    db: Database,
    broker: Connection,
    table: MakeTable,
) -> None:
    boundary = "cutoff"
    target = table()

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\n'
            f'{target}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        yield from chunks(LIMIT * 2)
        yield f"\r\n--{boundary}--\r\n".encode()

    before = state(db, broker)
    response = client.post(
        "/imports",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert state(db, broker) == before


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"json": {"target": "customers"}}, 415, "not_multipart"),
        (
            {"files": {"other": ("x.csv", GOOD)}, "data": {"target": "customers"}},
            422,
            "missing_file",
        ),
        ({"files": {"file": ("x.csv", GOOD)}}, 422, "missing_target"),
    ],
    ids=["json body", "no file part", "no target"],
)
def test_malformed_requests_name_what_is_missing(
    client: httpx.Client, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/imports", **request_kwargs)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_a_body_cut_off_midway_is_refused(client: httpx.Client) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n'
        b"id,email\n1,a@x\n"
    )
    response = client.post(
        "/imports", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "incomplete_body"


def test_an_idempotency_key_returns_the_first_job(
    client: httpx.Client, db: Database, broker: Connection, table: MakeTable
) -> None:
    target, key = table(), f"key-{os.getpid()}-{id(client)}"
    first = upload(client, GOOD, target, headers={"Idempotency-Key": key})
    second = upload(client, GOOD, target, headers={"Idempotency-Key": key})

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert db.value("SELECT count(*) FROM import_jobs WHERE idempotency_key = %s", (key,)) == 1
    assert message_count(broker, EXPRESS_QUEUE) == 1, "a small file goes to the express queue"


def test_refused_rows_come_as_json_pages_and_as_a_csv_to_fix(
    client: httpx.Client, worker: Process, table: MakeTable
) -> None:
    content = (
        b'id;email;name\n1;a@x;ok\nx;b@x;=HYPERLINK("http://evil")\n'
        b"3;;-2+3\n4;d@x;-42\n5;e@x;fine\n"
    )
    job = wait_for_job(client, upload(client, content, table()).json()["id"])
    assert (job["rows_loaded"], job["rows_refused"]) == (3, 2)

    page = client.get(f"/imports/{job['id']}/errors", params={"limit": 1}).json()
    assert [(r["line"], r["column"], r["code"]) for r in page["items"]] == [
        (3, "id", "not_integer")
    ]
    rest = client.get(page["next"]).json()
    assert [(r["line"], r["column"], r["code"]) for r in rest["items"]] == [
        (4, "email", "not_null")
    ]

    download = client.get(f"/imports/{job['id']}/errors", headers={"Accept": "text/csv"})
    assert download.headers["content-type"].startswith("text/csv")
    assert download.text.splitlines() == [
        "\ufeffid;email;name;error",
        'x;b@x;"\'=HYPERLINK(""http://evil"")";"line 3: id: invalid input syntax for type '
        'bigint: ""x"""',
        "3;;'-2+3;line 4: email: is empty, but the column does not allow empty values",
    ]


def test_jobs_are_listed_newest_first_with_paging(client: httpx.Client, table: MakeTable) -> None:
    target = table()
    ids = [upload(client, GOOD, target).json()["id"] for _ in range(3)]
    page = client.get("/imports", params={"limit": 2}).json()
    assert [job["id"] for job in page["items"]] == ids[::-1][:2]
    following = client.get(page["next"]).json()
    assert following["items"][0]["id"] == ids[0]


def test_an_unknown_job_is_a_404(client: httpx.Client) -> None:
    response = client.get("/imports/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_health_checks_every_service_for_real(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert {name: check["ok"] for name, check in response.json()["checks"].items()} == {
        "postgresql": True,
        "redis": True,
        "rabbitmq": True,
    }


def test_targets_are_listed_with_their_columns(client: httpx.Client, table: MakeTable) -> None:
    name = table()
    found = {t["name"]: t for t in client.get("/targets").json()["items"]}
    assert found[name]["primary_key"] == ["id"]
    email = next(c for c in found[name]["columns"] if c["name"] == "email")
    assert email == {"name": "email", "type": "text", "required": True, "nullable": False}
    assert "public.import_jobs" not in found


def test_uploads_never_write_outside_the_upload_directory(
    client: httpx.Client, table: MakeTable
) -> None:
    response = upload(client, GOOD, table(), name="../../etc/$(reboot);`x`.csv")
    assert response.status_code == 202
    assert response.json()["file_name"] == "../../etc/$(reboot);`x`.csv"
    stored = Path(ENV["UPLOAD_DIR"], f"{response.json()['id']}.csv")
    assert stored.read_bytes() == GOOD
