"""The loader's fast path: what the row pattern lets through, and how a file lands.

Pure tests of the pattern first (no service); then the two ways a file lands (staged with
checkpoints, or, for a small append on its first attempt, in one transaction); then the
express queue, which keeps small imports from waiting behind big ones.
"""

from __future__ import annotations

import csv
import io
import json
import signal
from collections.abc import Iterator

import httpx
import pytest
import redis

from server.csvfile.convert import RowConverter
from server.csvfile.detect import Layout
from server.csvfile.pattern import row_pattern, with_positions
from server.loading.batches import BATCH_BYTES, Scanner
from server.messaging.topology import EXPRESS_QUEUE, WORK_QUEUE
from server.progress.events import snapshot_key
from server.settings import get_settings
from server.targets import Column
from tests.conftest import ENV, MakeTable, StartWorker
from tests.harness import Database, Process, wait_until
from tests.support import CUSTOMER_COLUMNS, csv_bytes, customer_rows, upload, wait_for_job

COLUMNS = [
    Column("id", "int8", False, False),
    Column("name", "varchar", True, False, length=5),
    Column("born", "date", True, False),
    Column("balance", "numeric", True, False, precision=6, scale=2),
    Column("active", "bool", True, False),
    Column("seen", "timestamptz", True, False),
]
PATTERN = row_pattern(COLUMNS, ",", "\n", "utf-8", [""])


def passes(line: str) -> bool:
    assert PATTERN is not None
    data = line.encode() + b"\n"
    return PATTERN.match(data).end() == len(data)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "line",
    [
        "1,Ada,1990-01-31,1234.50,true,2024-05-01T10:00:00Z",
        "-7,,,,,",
        '2,"A,b",2000-02-28,0.5,F,2024-05-01 10:00:00.123+02:00',
        '"3","Q""x",1999-12-31,"-9999.99",yes,',
        '4,"",,"",,""',
    ],
)
def test_plain_rows_take_the_fast_path(line: str) -> None:
    assert passes(line)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("+5,Ada,,,,", "a sign the careful path normalises"),
        (" 5,Ada,,,,", "white space around a number"),
        (",Ada,,,,", "empty in a column that takes no NULL"),
        ('"",Ada,,,,', "quoted empty in a column that takes no NULL"),
        ("1,Adalbert,,,,", "longer than varchar(5)"),
        ("1,Ada,2024-02-29,,,", "a leap day: the careful path checks the calendar"),
        ("1,Ada,2023-02-30,,,", "no such day"),
        ("1,Ada,,10000.00,,", "too many digits before the point"),
        ("1,Ada,,1.234,,", "more decimals than the scale"),
        ("1,Ada,,1e3,,", "an exponent"),
        ("1,Ada,,,maybe,", "not a boolean"),
        ("1,Ada,,,,2024-05-01", "a date where a timestamp goes"),
        ('1,"A\nb",,,,', "a line break inside quotes"),
        ("1,A\x00,,,,", "a NUL character"),
        ("1,Ada,,,", "a field missing"),
        ("1,Ada,,,,,", "a field too many"),
        ('1,A"b,,,,', "a quote inside an unquoted field"),
    ],
)
def test_anything_unusual_goes_the_careful_way(line: str, why: str) -> None:
    assert not passes(line), why


# The shapes the corpus of real files shows: CRLF line ends, `NA` for missing values,
# quotes around values of any type, timestamps with `T` or a space, with or without seconds,
# fractions and offsets in every ISO form, float exponents, booleans in any case, time of
# day, IPv4 addresses.
WIDE = [
    Column("id", "int8", False, False),
    Column("score", "float8", True, False),
    Column("small", "float4", True, False),
    Column("at", "timestamptz", True, False),
    Column("ok", "bool", True, False),
    Column("clock", "time", True, False),
    Column("ip", "inet", True, False),
    Column("name", "text", True, False),
]


@pytest.mark.parametrize(
    "line",
    [
        "1,1.1e+07,2.5E-3,2013-01-01T10:00:00Z,TRUE,10:30,10.0.0.1,Ann",
        "2,NA,NA,2013-01-01 10:00:00.123456+05,False,NA,NA,NA",
        '"3","2.5","1e20","2013-01-01 10:00+0530","yes","10:30:00.5","1.2.3.4/24","B ""q"""',
        '4,-0.5e-99,0,2013-12-31T23:59-08:00,t,23:59:59,255.255.255.0,"NA"',
        "5,NA,NA,NA,NA,NA,NA,",
    ],
)
def test_the_shapes_of_real_files_take_the_fast_path(line: str) -> None:
    pattern = row_pattern(WIDE, ",", "\r\n", "utf-8", ["NA"])
    assert pattern is not None
    data = line.encode() + b"\r\n"
    assert pattern.match(data).end() == len(data)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("1,1e300,,,,,,", "an exponent near the type's limit"),
        ("1,,1e21,,,,,", "an exponent too large for float4"),
        ("1,,,2013-01-01 24:00,,,,", "hour 24"),
        ("1,,,,,,010.0.0.1,", "a leading zero in an address"),
        ("1,,,,,,::1,", "an IPv6 address"),
        ("NA,,,,,,,", "the null marker in a column that takes no NULL"),
        ("1,,,,,,,x\n", "a bare LF in a CRLF file"),
        ("1,,NA,NA,NA,NA,NA,NA", "an empty number where `NA` is the null marker"),
    ],
)
def test_what_real_files_hold_beyond_those_shapes_goes_the_careful_way(line: str, why: str) -> None:
    pattern = row_pattern(WIDE, ",", "\r\n", "utf-8", ["NA"])
    assert pattern is not None
    data = line.encode() + b"\r\n"
    assert pattern.match(data).end() < len(data), why  # type: ignore[union-attr]


def test_no_fast_path_for_other_null_markers_encodings_or_types() -> None:
    assert row_pattern(COLUMNS, ",", "\n", "utf-8", ["", "NULL"]) is None
    assert row_pattern(COLUMNS, ",", "\n", "utf-8", ['"']) is None
    assert row_pattern(COLUMNS, ",", "\n", "utf-16-le", [""]) is None
    assert row_pattern([Column("doc", "jsonb", True, False)], ",", "\n", "utf-8", [""]) is None
    assert row_pattern(COLUMNS, ";", "\r\n", "cp1252", [""]) is not None


def test_each_line_of_a_run_carries_its_line_number_byte_offset_and_length() -> None:
    run = b"1,a\r\n22,bb\r\n"
    assert with_positions(run, 7, 100, "\r\n", ",") == b"1,a,7,100,5\n22,bb,8,105,7\n"


def test_a_batch_of_long_rows_ends_by_its_size_not_only_by_its_rows() -> None:
    """Rows of a megabyte each: BATCH_ROWS of them (twice, in flight) would be gigabytes."""
    row = b"x" * (1 << 20)
    data = b"doc\n" + b"".join(row + b"\n" for _ in range(30))
    converter = RowConverter([Column("doc", "text", True, False)], [""])
    layout = Layout("utf-8", 0, "\n", ",")
    batches = list(Scanner(io.BytesIO(data), layout, converter, None, 10_000).batches(4, 2))
    assert sum(batch.rows for batch in batches) == 30
    assert len(batches) > 1
    assert (
        max(batch.end_offset - batch.start_offset for batch in batches)
        <= BATCH_BYTES + len(row) + 1
    )


def wide_rows(count: int) -> Iterator[list[str]]:
    """Rows as R or pandas would write them: `NA` for missing values, exponents, ISO
    timestamps with offsets, TRUE/FALSE."""
    for n in range(1, count + 1):
        missing = n % 5 == 0
        yield [
            str(n),
            "NA" if missing else f"{n * 1.5:.3e}",
            "NA" if missing else f"{n % 977}.5",
            f"2013-01-{n % 28 + 1:02d}T{n % 24:02d}:00:00Z",
            ["TRUE", "FALSE"][n % 2],
            "NA" if missing else f"{n % 24:02d}:{n % 60:02d}",
            f"10.{n % 256}.{n // 256 % 256}.1",
            "NA" if missing else f"name, {n}",
        ]


def test_a_file_written_by_pythons_csv_module_with_na_for_missing_takes_the_fast_path(
    client: httpx.Client, worker: Process, table: MakeTable, db: Database
) -> None:
    """CRLF line ends (the csv module's own), `NA` markers, quoted text: every record goes
    the fast way, and the table equals PostgreSQL's own COPY of the file."""
    ddl = (
        "(id int8, score float8, small float4, at timestamptz, ok bool, clock time, "
        "ip inet, name text)"
    )
    names = [column.name for column in WIDE]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    writer.writerows(wide_rows(20_000))
    content = out.getvalue().encode()
    assert b"\r\n" in content
    target, reference = table(ddl), table(ddl)
    db.copy_csv(
        reference,
        content,
        f"FORMAT csv, HEADER true, NULL 'NA', FORCE_NULL ({', '.join(names)})",
    )

    job = wait_for_job(client, upload(client, content, target, null_markers="NA").json()["id"])

    assert (job["status"], job["rows_loaded"], job["rows_careful"]) == ("completed", 20_000, 0)
    assert db.fingerprint(target) == db.fingerprint(reference)


def test_a_small_append_killed_in_its_one_transaction_leaves_nothing_and_lands_once(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    rows = 200_000
    content = csv_bytes(CUSTOMER_COLUMNS, customer_rows(rows))
    target, reference = table(), db.reference(table(), content)
    job_id = upload(client, content, target).json()["id"]
    first = workers(batch_rows=500)
    progress = redis.Redis.from_url(ENV["REDIS_URL"])

    def loaded() -> int:
        snapshot = progress.hget(snapshot_key(job_id), "data")
        return int(json.loads(snapshot)["rows_loaded"]) if snapshot else 0

    wait_until(loaded, 60, "the load never started")
    first.kill(signal.SIGKILL)
    assert "in one transaction" in first.log()
    assert db.value(f"SELECT count(*) FROM {target}") == 0, "nothing is visible before commit"
    assert db.value("SELECT checkpoint_line FROM import_jobs WHERE id = %s", (job_id,)) == 2

    workers(batch_rows=500)
    job = wait_for_job(client, job_id)
    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", rows, 0)
    assert db.checksum(target) == db.checksum(reference)


def test_a_row_only_the_database_refuses_sends_a_one_transaction_load_the_staged_way(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    target = table()
    db.execute(f"INSERT INTO {target} (id, email) VALUES (500, 'taken@example.com')")
    worker = workers()
    job_id = upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(1000)), target).json()["id"]
    job = wait_for_job(client, job_id)

    assert (job["status"], job["rows_loaded"], job["rows_refused"]) == ("completed", 999, 1)
    refused = client.get(f"/imports/{job_id}/errors").json()["items"]
    assert [(r["code"], r["raw"].split(",")[0]) for r in refused] == [("duplicate_key", "500")]
    assert db.value(f"SELECT count(*) FROM {target}") == 1000
    assert "loading it staged instead" in worker.log()


def test_a_small_import_does_not_wait_behind_a_big_one(
    client: httpx.Client, workers: StartWorker, table: MakeTable, db: Database
) -> None:
    workers(queue=WORK_QUEUE, batch_rows=500, one_transaction_max_bytes=0)
    workers(queue=EXPRESS_QUEUE)
    big = csv_bytes(CUSTOMER_COLUMNS, customer_rows(240_000))
    assert len(big) > int(get_settings().express_max_bytes), "the big file must be big"
    big_id = upload(client, big, table()).json()["id"]
    wait_until(
        lambda: db.value("SELECT rows_loaded FROM import_jobs WHERE id = %s", (big_id,)),
        60,
        "the big import never started",
    )

    small = wait_for_job(
        client,
        upload(client, csv_bytes(CUSTOMER_COLUMNS, customer_rows(100)), table()).json()["id"],
    )

    assert (small["status"], small["rows_loaded"]) == ("completed", 100)
    big_job = client.get(f"/imports/{big_id}").json()
    assert big_job["status"] == "running", "the small one finished while the big one ran"
    assert wait_for_job(client, big_id, timeout=300)["status"] == "completed"
