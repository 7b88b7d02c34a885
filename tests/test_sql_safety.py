"""SQL safety: every field of an upload, filled with injection attempts.

Table and column names only ever come from the allow-list and from reflection, and reach
SQL quoted as identifiers; values only as parameters or COPY data. Each hostile upload
gets a clear 4xx JSON error, or is accepted and ends like any other import. A canary table
next to the targets, and every other table, stay exactly as they were.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import MakeKey, MakeTable
from tests.harness import Database, Process, bearer
from tests.support import TEST_SCHEMA, wait_for_job

CANARY = f"{TEST_SCHEMA}.canary"


def hostile(canary: str) -> list[str]:
    return [
        f'x"; DROP TABLE {canary}; --',
        f"customers; DROP TABLE {canary}",
        "public.customers' OR '1'='1",
        f"{TEST_SCHEMA}.x' OR '1'='1",
        f'{TEST_SCHEMA}."t"; DROP TABLE {canary}; --"',
        f"$$; DROP TABLE {canary}; $$",
        f"public.customers\\'; DROP TABLE {canary}; --",
        f"{canary} WHERE 1=1; DELETE FROM {canary}",
        f"{TEST_SCHEMA}.*",
        "pg_catalog.pg_authid",
        "../../etc/passwd",
        "‘customers’; DROP TABLE x; --",  # typographic quotes
        "“customers”",
        "ʼ OR ʼ1ʼ=ʼ1",
        "＂; DROP TABLE x; --",  # a fullwidth quote
        f"customers\x00; DROP TABLE {canary}",
        f"{TEST_SCHEMA}.t\x00x",
        f"{TEST_SCHEMA}." + "t" * 64,  # longer than PostgreSQL keeps: it would be cut
        "x" * 10_000,
        "",
        " ",
    ]


GOOD_ROWS = "1,a@example.com\n2,b@example.com\n"


@dataclass
class Attempt:
    """One upload: the fields of a good one, with one of them replaced."""

    target: str
    content: str = "id,email\n" + GOOD_ROWS
    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[str, bytes] = field(default_factory=dict)
    filename: str = "data.csv"


Make = Callable[[str, str], Attempt]

FIELDS: dict[str, Make] = {
    "target": lambda target, bad: Attempt(bad),
    "mode": lambda target, bad: Attempt(target, fields={"mode": bad}),
    "upsert key": lambda target, bad: Attempt(target, fields={"mode": "upsert", "key": bad}),
    "encoding": lambda target, bad: Attempt(target, fields={"encoding": bad}),
    "delimiter": lambda target, bad: Attempt(target, fields={"delimiter": bad}),
    "null markers": lambda target, bad: Attempt(target, fields={"null_markers": bad}),
    "max errors": lambda target, bad: Attempt(target, fields={"max_errors": bad}),
    "max error rate": lambda target, bad: Attempt(target, fields={"max_error_rate": bad}),
    "mapping as written": lambda target, bad: Attempt(target, fields={"mapping": bad}),
    "mapping header": lambda target, bad: Attempt(
        target,
        content=f"id,{_csv(bad)}\n{GOOD_ROWS}",
        fields={"mapping": json.dumps({bad: "email"})},
    ),
    "mapping column": lambda target, bad: Attempt(
        target, fields={"mapping": json.dumps({"email": bad})}
    ),
    "header name": lambda target, bad: Attempt(target, content=f"id,{_csv(bad)}\n{GOOD_ROWS}"),
    "extra header name": lambda target, bad: Attempt(
        target, content=f"id,email,{_csv(bad)}\n1,a@example.com,x\n"
    ),
    "idempotency key": lambda target, bad: Attempt(
        target, headers={"Idempotency-Key": bad.encode()}
    ),
    "file name": lambda target, bad: Attempt(target, filename=bad),
}


def _csv(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@pytest.fixture
def client(api: str, make_key: MakeKey) -> Iterator[httpx.Client]:
    """A tenant of its own: idempotency keys sent by an earlier run are not its own."""
    key = make_key(f"hostile-{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=api, headers=bearer(key), timeout=60) as http:
        yield http


@pytest.fixture
def canary(db: Database) -> Iterator[str]:
    db.execute(f"DROP TABLE IF EXISTS {CANARY}")
    db.execute(f"CREATE TABLE {CANARY} (id int PRIMARY KEY, word text)")
    db.execute(f"INSERT INTO {CANARY} VALUES (1, 'still here'), (2, 'untouched')")
    yield CANARY
    db.execute(f"DROP TABLE IF EXISTS {CANARY}")


def tables(db: Database) -> list[tuple[str, str]]:
    return sorted(
        db.rows(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname "
            "NOT IN ('pg_catalog', 'information_schema', 'import_staging')"
        )
    )


def send(client: httpx.Client, attempt: Attempt) -> httpx.Response:
    key = attempt.headers.get("Idempotency-Key")
    if key is not None and (b"\x00" in key or key != key.strip()):
        attempt.headers = {}  # HTTP itself cannot carry it
    boundary = uuid.uuid4().hex
    headers = {
        b"Content-Type": f"multipart/form-data; boundary={boundary}".encode(),
        **{name.encode(): value for name, value in attempt.headers.items()},
    }
    return client.post("/imports", content=multipart(attempt, boundary), headers=headers)


def multipart(attempt: Attempt, boundary: str) -> bytes:
    """Written by hand, so that every byte arrives as it is (a library would escape)."""
    parts = [
        (f'name="{name}"', value)
        for name, value in {"target": attempt.target, **attempt.fields}.items()
    ]
    parts.append(
        (f'name="file"; filename="{attempt.filename}"\r\nContent-Type: text/csv', attempt.content)
    )
    body = "".join(
        f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n{value}\r\n"
        for disposition, value in parts
    )
    return (body + f"--{boundary}--\r\n").encode()


def problem(response: httpx.Response) -> str | None:
    """What is wrong with an answer to a hostile upload, if anything."""
    if response.status_code == 202:
        return None
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}: {response.text[:300]}"
    error = response.json().get("error", {})
    if not (isinstance(error.get("code"), str) and error.get("message")):
        return f"no clear error: {response.text[:300]}"
    return None


@pytest.mark.parametrize("name", FIELDS)
def test_injection_strings_in_every_field_change_nothing_they_should_not(
    name: str,
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
    canary: str,
) -> None:
    target = table("(id bigint PRIMARY KEY, email text NOT NULL, name text)")
    before = (tables(db), db.checksum(canary))
    answers = {bad: send(client, FIELDS[name](target, bad)) for bad in hostile(canary)}

    problems = {
        bad[:80]: found for bad, response in answers.items() if (found := problem(response))
    }
    assert problems == {}
    accepted = [
        response.json()["id"] for response in answers.values() if response.status_code == 202
    ]
    ends = {wait_for_job(client, job_id)["status"] for job_id in accepted}
    assert ends <= {"completed"}, f"accepted uploads ended {ends}"
    assert (tables(db), db.checksum(canary)) == before
    assert db.rows(f"SELECT id, word FROM {canary} ORDER BY id") == [
        (1, "still here"),
        (2, "untouched"),
    ]
