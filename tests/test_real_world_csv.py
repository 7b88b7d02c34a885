"""Messy files, as people export them: every file lands exactly as a person would expect.

Each case is a hand-made file, the target it goes into, the upload options, the exact rows
that land and the exact refused lines with their column and reason.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import MakeTable
from tests.harness import Database, Process
from tests.support import upload, wait_for_job

NAMES = "(id int PRIMARY KEY, name text)"
U1 = "8c1e7a52-8f2b-4b7f-9a3e-2a9c0f6d1b10"


@dataclass
class Case:
    name: str
    content: bytes
    rows: list[tuple[Any, ...]]
    refused: list[tuple[int, str | None, str]] = field(default_factory=list)
    ddl: str = NAMES
    options: dict[str, Any] = field(default_factory=dict)
    # Rows that passed every check, when that differs from the rows that land (an upsert
    # that names a key twice lands it once).
    loaded: int | None = None


CASES = [
    Case("utf-8", b"id,name\n1,Ann\n2,Bob\n", [(1, "Ann"), (2, "Bob")]),
    Case("utf-8 with BOM, CRLF", codecs.BOM_UTF8 + "id,name\r\n1,Zoë\r\n".encode(), [(1, "Zoë")]),
    Case(
        "utf-16 LE, tab",
        codecs.BOM_UTF16_LE + "id\tname\n1\tŁukasz\n".encode("utf-16-le"),
        [(1, "Łukasz")],
    ),
    Case(
        "utf-16 BE, pipe",
        codecs.BOM_UTF16_BE + "id|name\n1|日本\n".encode("utf-16-be"),
        [(1, "日本")],
    ),
    Case(
        "cp1252, semicolon",
        "id;name\n1;Crème brûlée – €5\n".encode("cp1252"),
        [(1, "Crème brûlée – €5")],
    ),
    Case(
        "latin-1 forced",
        "id,name\n1,café\n".encode("latin-1"),
        [(1, "café")],
        options={"encoding": "latin-1"},
    ),
    Case("delimiter inside quotes", b'id;name\n1;"a;b"\n2;a,b\n', [(1, "a;b"), (2, "a,b")]),
    Case(
        "doubled quotes and newlines in quotes",
        b'id,name\n1,"say ""hi"",\nthen go"\n2,d\n',
        [(1, 'say "hi",\nthen go'), (2, "d")],
    ),
    Case("CR line ends", b"id,name\r1,x\r2,y\r", [(1, "x"), (2, "y")]),
    Case("no newline at the end", b"id,name\n1,x\n2,y", [(1, "x"), (2, "y")]),
    Case("blank lines are skipped", b"id,name\n1,x\n\n\n2,y\n\n", [(1, "x"), (2, "y")]),
    Case("delimiter given", b"id|name\n1|a,b\n", [(1, "a,b")], options={"delimiter": "pipe"}),
    Case(
        "headers by normalised name",
        b" ID ,Signup Date\n1,2024-01-02\n",
        [(1, date(2024, 1, 2))],
        ddl="(id int, signup_date date)",
    ),
    Case(
        "explicit mapping",
        b"key,who\n1,Ann\n",
        [(1, "Ann")],
        options={"mapping": '{"key": "id", "who": "name"}'},
    ),
    Case("extra columns ignored", b"id,name,unused\n1,a,zzz\n", [(1, "a")]),
    Case(
        "integer range",
        b"id,small\n1,32767\n2,32768\n3,x\n",
        [(1, 32767)],
        [(3, "small", "out_of_range"), (4, "small", "not_integer")],
        ddl="(id int PRIMARY KEY, small smallint)",
    ),
    Case(
        "numeric precision and scale",
        b"id,amount\n1,123.45\n2,1234.5\n3,12.345\n",
        [(1, Decimal("123.45")), (3, Decimal("12.35"))],
        [(3, "amount", "out_of_range")],
        ddl="(id int, amount numeric(5, 2))",
    ),
    Case(
        "real and double",
        b"id,r,d\n1,1.5,2.25\n2,abc,1\n",
        [(1, 1.5, 2.25)],
        [(3, "r", "not_number")],
        ddl="(id int, r real, d double precision)",
    ),
    Case(
        "booleans",
        b"id,b\n1,TRUE\n2,f\n3,Yes\n4,no\n5,1\n6,0\n7,maybe\n",
        [(1, True), (2, False), (3, True), (4, False), (5, True), (6, False)],
        [(8, "b", "not_boolean")],
        ddl="(id int, b boolean)",
    ),
    Case(
        "dates and timestamps",
        b"id,d,ts,tz\n1,2024-02-29,2024-02-29T10:00:00,2024-02-29T10:00:00+02:00\n"
        b"2,2023-02-29,2024-01-01 00:00,2024-01-01T00:00Z\n"
        b"3,2024-01-01,2024-01-01T00:00+01:00,2024-01-01 12:30\n",
        [(1, date(2024, 2, 29), datetime(2024, 2, 29, 10), datetime(2024, 2, 29, 8, tzinfo=UTC))],
        [(3, "d", "not_date"), (4, "ts", "unexpected_time_zone")],
        ddl="(id int, d date, ts timestamp, tz timestamptz)",
    ),
    Case(
        "uuid and json",
        f'id,u,j\n1,{U1},"{{""a"": 1}}"\n2,nope,{{}}\n3,{U1},{{bad\n'.encode(),
        [(1, U1, {"a": 1})],
        [(3, "u", "not_uuid"), (4, "j", "not_json")],
        ddl="(id int, u uuid, j jsonb)",
    ),
    Case(
        "varchar length and NOT NULL",
        b"id,code\n1,abc\n2,abcd\n3,\n",
        [(1, "abc")],
        [(3, "code", "too_long"), (4, "code", "not_null")],
        ddl="(id int, code varchar(3) NOT NULL)",
    ),
    Case(
        "null markers",
        b"id,n\n1,NA\n2,\\N\n3,5\n4,\n",
        [(1, None), (2, None), (3, 5)],
        [(5, "n", "not_integer")],
        ddl="(id int, n int)",
        options={"null_markers": r"NA,\N"},
    ),
    Case(
        "wrong number of fields",
        b"id,name\n1\n2,b\n3,c,d\n",
        [(2, "b")],
        [(2, None, "field_count"), (4, None, "field_count")],
    ),
    Case(
        "a key twice in append mode",
        b"id,name\n1,a\n1,b\n2,c\n",
        [(1, "a"), (2, "c")],
        [(3, "id", "duplicate_key")],
    ),
    Case(
        "invalid UTF-8 in the middle",
        b"id,name\n1,ok\n2,\xff\xfe\n3,fine\n",
        [(1, "ok"), (3, "fine")],
        [(3, None, "encoding")],
        options={"encoding": "utf-8"},
    ),
    Case(
        "the file ends inside a quote",
        b'id,name\n1,a\n2,"open\n',
        [(1, "a")],
        [(3, None, "unterminated_quote")],
    ),
    Case(
        "upsert on a named unique key",
        b"email,name\na@x,A\nb@x,B\na@x,A2\n",
        [("a@x", "A2"), ("b@x", "B")],
        ddl="(email text, name text, CONSTRAINT by_email UNIQUE (email))",
        options={"mode": "upsert", "key": "by_email"},
        loaded=2,  # the third line supersedes the first
    ),
    Case(
        "enum labels",
        b"id,mood\n1,happy\n2,meh\n",
        [(1, "happy")],
        [(3, "mood", "not_allowed")],
        ddl="(id int, mood importtest.mood)",
    ),
]


@pytest.fixture(scope="module")
def mood_type(db: Database) -> None:
    db.execute(
        "DO $$ BEGIN CREATE TYPE importtest.mood AS ENUM ('happy', 'sad'); "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_messy_file_lands_as_expected(
    case: Case,
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
    mood_type: None,
) -> None:
    target = table(case.ddl)
    response = upload(client, case.content, target, **case.options)
    assert response.status_code == 202, response.text

    job = wait_for_job(client, response.json()["id"])

    assert job["status"] == "completed", job
    assert db.rows(f"SELECT * FROM {target} ORDER BY 1") == case.rows
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["column"], r["code"]) for r in refused] == case.refused
    loaded = len(case.rows) if case.loaded is None else case.loaded
    assert (job["rows_loaded"], job["rows_refused"]) == (loaded, len(case.refused))


def test_the_job_records_what_was_detected(client: httpx.Client, table: MakeTable) -> None:
    content = codecs.BOM_UTF16_LE + "id;name;extra\r\n1;a;b\r\n".encode("utf-16-le")
    job = upload(client, content, table(NAMES)).json()
    assert (job["encoding"], job["delimiter"], job["extra_columns"]) == (
        "utf-16-le",
        ";",
        ["extra"],
    )


def test_a_foreign_key_violation_is_a_refused_row(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    parent = table("(id int PRIMARY KEY)")
    db.execute(f"INSERT INTO {parent} VALUES (1)")
    child = table(f"(id int PRIMARY KEY, parent int REFERENCES {parent})")

    job = wait_for_job(client, upload(client, b"id,parent\n1,1\n2,9\n", child).json()["id"])

    assert db.rows(f"SELECT * FROM {child}") == [(1, 1)]
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(r["line"], r["code"]) for r in refused] == [(3, "foreign_key")]
    assert "is not present in table" in refused[0]["message"]


MESSY = (
    "id;email;name;signup_date;balance\n"
    "1;a@x;Ann;2024-01-01;10.00\n"
    "2;b@x;Bob;2023-02-30;20.00\n"
    '3;c@x;"Chloé; the ""boss""";2024-01-03;30,50\n'
    "4;;Dan;2024-01-04;40.00\n"
    "5;e@x;=cmd|' /C calc'!A0;2024-01-05;50.00\n"
    "6;f@x;Fay;2024-13-01;60.00\n"
).encode("cp1252")
FIXES = {"2023-02-30": "2023-02-28", "30,50": "30.50", "": "d@x", "2024-13-01": "2024-12-01"}


def fix(refused_csv: str) -> bytes:
    """What a person does in a spreadsheet: correct the cells, drop the reason column."""
    rows = list(csv.reader(io.StringIO(refused_csv.lstrip("\ufeff")), delimiter=";"))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(rows[0][:-1])
    for row in rows[1:]:
        writer.writerow([FIXES.get(cell, cell.removeprefix("'")) for cell in row[:-1]])
    return out.getvalue().encode()


def test_refused_rows_fixed_and_uploaded_again_complete_the_table(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    target = table(
        "(id int PRIMARY KEY, email text NOT NULL, name text, signup_date date, "
        "balance numeric(8, 2))"
    )
    first = wait_for_job(client, upload(client, MESSY, target).json()["id"])
    assert (first["rows_loaded"], first["rows_refused"]) == (2, 4)

    download = client.get(f"/imports/{first['id']}/errors", headers={"Accept": "text/csv"})
    second = wait_for_job(client, upload(client, fix(download.text), target).json()["id"])

    assert (second["status"], second["rows_loaded"], second["rows_refused"]) == ("completed", 4, 0)
    assert db.rows(
        f"SELECT id, email, name, signup_date, balance::text FROM {target} ORDER BY id"
    ) == [
        (1, "a@x", "Ann", date(2024, 1, 1), "10.00"),
        (2, "b@x", "Bob", date(2023, 2, 28), "20.00"),
        (3, "c@x", 'Chloé; the "boss"', date(2024, 1, 3), "30.50"),
        (4, "d@x", "Dan", date(2024, 1, 4), "40.00"),
        (5, "e@x", "=cmd|' /C calc'!A0", date(2024, 1, 5), "50.00"),
        (6, "f@x", "Fay", date(2024, 12, 1), "60.00"),
    ]


@pytest.mark.parametrize("budget", [{"max_errors": "1"}, {"max_error_rate": "0.2"}])
def test_an_import_over_its_error_budget_fails_and_leaves_the_target_as_it_was(
    client: httpx.Client,
    worker: Process,
    table: MakeTable,
    db: Database,
    budget: dict[str, Any],
) -> None:
    target = table(NAMES)
    db.execute(f"INSERT INTO {target} SELECT g, 'before ' || g FROM generate_series(1, 5) g")
    before = db.checksum(target)
    content = b"id,name\n10,a\nx,b\n11,c\n12,d\ny,e\n13,f\n1,taken\n"

    job = wait_for_job(client, upload(client, content, target, **budget).json()["id"])

    assert job["status"] == "failed"
    assert next(iter(budget)) in job["error"]
    assert db.checksum(target) == before
    refused = client.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [r["line"] for r in refused][:2] == [3, 6]
