"""Every line of a file is accounted for: loaded, refused or superseded, and a job completes
only when those add up; what the database refuses for a key is found as a set."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from psycopg2 import sql

from server.db import raw_cursor, worker_engine
from server.jobs.model import Checkpoint, Job
from server.loading import publish, staging
from server.loading.segment import session_name
from server.settings import get_settings
from server.targets import load_target
from tests.conftest import MakePair, MakeTable, StartWorker
from tests.harness import Database, Process, wait_until
from tests.inprocess import load
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job


def refused(client: httpx.Client, job_id: str) -> list[tuple[int, str | None, str]]:
    rows: list[dict[str, Any]] = []
    url: str | None = f"/imports/{job_id}/errors?limit=1000"
    while url:
        page = client.get(url).json()
        rows += page["items"]
        url = page["next"]
    return [(row["line"], row["column"], row["code"]) for row in rows]


def accounted(job: dict[str, Any], lines: int) -> bool:
    total: int = job["rows_loaded"] + job["rows_refused"] + job["rows_superseded"]
    return total == lines


def test_an_upsert_on_a_nullable_key_accounts_for_every_line(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    target = table("(id serial PRIMARY KEY, email text UNIQUE, name text)")
    content = b"email,name\n,first\na@x,second\n,third\nb@x,fourth\n,fifth\na@x,sixth\n"

    key = f"{target.split('.')[1]}_email_key"
    job = wait_for_job(client, upload(client, content, target, mode="upsert", key=key).json()["id"])

    assert job["status"] == "completed", job
    assert accounted(job, 6), job
    assert (job["rows_loaded"], job["rows_refused"], job["rows_superseded"]) == (2, 3, 1)
    assert refused(client, job["id"]) == [
        (2, "email", "null_key"),
        (4, "email", "null_key"),
        (6, "email", "null_key"),
    ]
    assert db.rows(f"SELECT email, name FROM {target} ORDER BY email") == [
        ("a@x", "sixth"),
        ("b@x", "fourth"),
    ]


def test_an_upsert_with_repeated_keys_and_a_row_a_check_refuses_accounts_for_every_line(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    """The insert tries first; whichever refusal it meets, the repeated keys leave before
    any probe runs (a probe over them would fail for them, not for the row it looks for)."""
    target = table("(id int PRIMARY KEY, qty int CHECK (qty >= 0))")
    content = b"id,qty\n1,5\n2,-1\n1,7\n3,2\n3,4\n4,1\n"

    job = wait_for_job(client, upload(client, content, target, mode="upsert").json()["id"])

    assert job["status"] == "completed", job
    assert (job["rows_loaded"], job["rows_refused"], job["rows_superseded"]) == (3, 1, 2)
    assert [(line, code) for line, _, code in refused(client, job["id"])] == [
        (3, "check_violation")
    ]
    assert db.rows(f"SELECT id, qty FROM {target} ORDER BY id") == [(1, 7), (3, 4), (4, 1)]


def test_an_overlapping_reupload_refuses_exactly_the_keys_already_there(
    client: httpx.Client, worker: Process, pair: MakePair, db: Database
) -> None:
    ddl = "(id int PRIMARY KEY, name text)"
    rows = [f"{n},name {n}\n" for n in range(1, 30_001)]
    overlap, again = rows[:3_000], [rows[10_000], rows[20_000]]  # again: given twice
    header = "id,name\n"
    twins = pair((header + "".join(rows[3_000:])).encode(), ddl)
    for table in (twins.target, twins.reference):
        db.copy_csv(table, (header + "".join(overlap)).encode())
    content = (header + "".join(rows + again)).encode()

    job = wait_for_job(client, upload(client, content, twins.target).json()["id"])

    assert job["status"] == "completed", job
    assert (job["rows_loaded"], job["rows_refused"]) == (27_000, 3_002)
    assert accounted(job, 30_002)
    found = refused(client, job["id"])
    assert {code for _, _, code in found} == {"duplicate_key"}
    assert [line for line, _, _ in found] == [*range(2, 3_002), 30_002, 30_003]
    assert twins.equal()


def test_rows_refused_before_the_budget_trips_are_kept_on_the_failed_job(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    """A small append loads in one transaction; over budget, it fails, and the rows it
    refused until then are still there to download."""
    target = table("(id int PRIMARY KEY, name text)")
    content = b"id,name\n1,a\nx,b\n2,c\ny,d\nz,e\n3,f\n"

    job = wait_for_job(client, upload(client, content, target, max_errors="2").json()["id"])

    assert job["status"] == "failed", job
    assert "max_errors=2" in job["error"]
    assert refused(client, job["id"]) == [
        (3, "id", "not_integer"),
        (5, "id", "not_integer"),
        (6, "id", "not_integer"),
    ]
    assert db.value(f"SELECT count(*) FROM {target}") == 0


def test_rows_the_database_refuses_past_the_budget_are_kept_on_the_failed_job(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    """Refused in the publish's set-based step (the key is in the table already): that step
    commits its refused rows before the budget is checked."""
    target = table("(id int PRIMARY KEY, name text)")
    db.execute(f"INSERT INTO {target} VALUES (1, 'there')")
    content = b"id,name\n1,a\n2,b\n"

    job = wait_for_job(client, upload(client, content, target, max_errors="0").json()["id"])

    assert job["status"] == "failed", job
    assert "max_errors=0" in job["error"]
    assert refused(client, job["id"]) == [(2, "id", "duplicate_key")]
    assert db.rows(f"SELECT id, name FROM {target}") == [(1, "there")]


def test_a_cancel_interrupts_a_long_publish_at_once(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    """The final insert is one statement; a cancel does not wait for its end."""
    target = table("(id int PRIMARY KEY, name text)")
    name = target.split(".")[1]
    db.execute(
        f"CREATE FUNCTION {target}_slow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$;"
        f"CREATE TRIGGER {name}_slow BEFORE INSERT ON {target} FOR EACH ROW "
        f"EXECUTE FUNCTION {target}_slow()"
    )
    content = ("id,name\n" + "".join(f"{n},n{n}\n" for n in range(1, 2001))).encode()
    workers(one_transaction_max_bytes=0)
    job_id = upload(client, content, target, mode="upsert").json()["id"]
    wait_until(
        lambda: db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND query LIKE 'INSERT INTO%%'",
            (session_name(uuid.UUID(job_id)),),
        ),
        60,
        "the final insert never started",
    )

    client.post(f"/imports/{job_id}/cancel")
    job = wait_for_job(client, job_id, timeout=30)  # the insert alone would take 100 s

    assert job["status"] == "cancelled"
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    db.execute(f"DROP FUNCTION {target}_slow() CASCADE")


def test_a_row_only_a_check_refuses_is_found_and_the_rest_lands(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    ddl = "(id int PRIMARY KEY, price numeric CHECK (price < 100))"
    target = table(ddl)
    lines = [f"{n},{n % 150}" for n in range(1, 2001)]
    content = ("id,price\n" + "\n".join(lines) + "\n").encode()

    job = wait_for_job(client, upload(client, content, target, mode="upsert").json()["id"])

    assert job["status"] == "completed", job
    too_dear = [n for n in range(1, 2001) if n % 150 >= 100]
    assert [(line, code) for line, _, code in refused(client, job["id"])] == [
        (n + 1, "check_violation") for n in too_dear
    ]
    assert db.value(f"SELECT count(*) FROM {target}") == 2000 - len(too_dear)
    assert accounted(job, 2000)


@pytest.mark.parametrize("staged", [False, True], ids=["one transaction", "staged"])
def test_rows_a_trigger_makes_vanish_fail_the_job_instead_of_completing_it(
    table: MakeTable, db: Database, monkeypatch: pytest.MonkeyPatch, staged: bool
) -> None:
    """PostgreSQL writes fewer rows than the file's lines that should land: the job fails,
    and the target stays as it was."""
    if staged:
        monkeypatch.setenv("ONE_TRANSACTION_MAX_BYTES", "0")
    get_settings.cache_clear()
    target = table("(id int, name text)")
    name = target.split(".")[1]
    db.execute(
        f"CREATE FUNCTION {target}_skip() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$;"
        f"CREATE TRIGGER {name}_skip BEFORE INSERT ON {target} FOR EACH ROW "
        f"EXECUTE FUNCTION {target}_skip()"
    )
    content = ("id,name\n" + "".join(f"{n},n{n}\n" for n in range(1, 101))).encode()

    job = load(content, target)
    get_settings.cache_clear()

    assert job.status == "failed"
    assert "PostgreSQL wrote" in (job.error or "")
    assert db.value(f"SELECT count(*) FROM {target}") == 0
    db.execute(f"DROP FUNCTION {target}_skip() CASCADE")


def test_a_cancel_during_the_publish_is_seen_and_the_target_stays_untouched(
    table: MakeTable, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONE_TRANSACTION_MAX_BYTES", "0")
    monkeypatch.setenv("BATCH_ROWS", "1000")
    get_settings.cache_clear()
    target = table()
    rows = 5_000

    def cancel_at_the_last_batch(job: Job, at: Checkpoint) -> None:
        if at.rows_loaded + at.rows_refused == rows:
            db.execute(
                "UPDATE import_jobs SET cancel_requested = true WHERE id = %s", (str(job.id),)
            )

    job = load(csv_bytes(CUSTOMER_COLUMNS, customer_rows(rows)), target, cancel_at_the_last_batch)
    get_settings.cache_clear()

    assert job.status == "cancelled"
    assert db.value(f"SELECT count(*) FROM {target}") == 0


def test_the_steps_before_the_insert_find_nothing_the_second_time(
    table: MakeTable, db: Database
) -> None:
    """A continuation after a committed step goes on from there: each step leaves nothing
    for itself to find again."""
    target = table("(id int PRIMARY KEY, name text)")
    db.execute(f"INSERT INTO {target} VALUES (1, 'there')")
    job_id = uuid.uuid4()
    staged = [(1, "a", 2), (2, "b", 3), (2, "c", 4), (3, "d", 5), (3, "e", 6), (3, "f", 7)]
    engine = worker_engine(get_settings())
    with engine.begin() as connection:
        cursor = raw_cursor(connection)
        reflected = load_target(connection, target, [target])
        staging.create(cursor, job_id, reflected, ["id", "name"])
        for key, name, line in staged:
            cursor.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, 10)").format(
                    staging.table_of(job_id)
                ),
                (key, name, line, line * 10),
            )
        upsert = publish.Publish(job_id, reflected, ["id", "name"], "upsert", ["id"])
        assert publish.supersede(cursor, upsert) == 3
        assert publish.supersede(cursor, upsert) == 0
        append = publish.Publish(job_id, reflected, ["id", "name"], "append", [])
        assert [(f.line, f.problem.code) for f in publish.taken(cursor, append)] == [
            (2, "duplicate_key")
        ]
        assert publish.taken(cursor, append) == []
        assert publish.repeated(cursor, append) == []
        staging.drop(cursor, job_id)
    engine.dispose()
