"""How fast the pipeline lands a big file, next to PostgreSQL's own `psql \\copy` of it.

    python scripts/bench.py                      # 1,000,000 rows, 3 runs, medians
    python scripts/bench.py --rows 100000 5000000 --runs 1
    python scripts/bench.py --small-during 5000000   # a 100-row job while a big one runs
    python scripts/bench.py --upload-only 10000000   # API memory while receiving ~1 GB
    python scripts/bench.py --overlap 1000000        # an append whose first 5% are there
    python scripts/bench.py --upsert 1000000 5000000 # upserts, next to psql's own upsert
    python scripts/bench.py --european 1000000       # a German spreadsheet's export of it
    python scripts/bench.py --packed 1000000         # gzipped, zstd, zipped, as an xlsx sheet
    python scripts/bench.py --json

Each run times the baseline (`psql \\copy` into an identical table with its primary key)
and then the whole pipeline on the same file: from the first byte of the HTTP upload to the
final server-sent event, with the API and the workers running as `make run` starts them, in
the default atomic mode with full validation. Both tables must then hold the same rows.
Peak memory (RSS) of the API and of the busiest worker process is sampled all along.

Everything runs in its own database, RabbitMQ virtual host and Redis database (see ENV), on
the PostgreSQL, Redis and RabbitMQ of `make run`; generated files are kept in var/bench.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchdata

from server.api.unpack import zstd
from server.run import api_command, express_command, worker_command
from server.settings import get_settings
from tests.harness import ROOT, Database, Process, bearer, events, final_event, make_key, rss_mb

WORK = ROOT / "var" / "bench"
PORT = int(os.environ.get("BENCH_API_PORT", "8099"))
HOST = os.environ.get("BENCH_DATABASE_HOST", "127.0.0.1")
DSN = f"postgresql://postgres@{HOST}:5432/csv_import_bench"
ENV = {
    "DATABASE_URL": DSN.replace("postgresql://", "postgresql+psycopg2://"),
    "BROKER_URL": os.environ.get(
        "BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/csv_import_bench"
    ),
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "UPLOAD_DIR": str(WORK / "uploads"),
    "IMPORT_TARGETS": "bench.*",
    "MAX_UPLOAD_BYTES": str(64 * 1024**3),
    "API_PORT": str(PORT),
}
DB = Database(DSN)


@dataclass
class Figures:
    rows: int
    megabytes: float
    baseline_seconds: float
    pipeline_seconds: float
    ratio: float
    rows_per_second: float
    worker_peak_mb: float
    api_peak_mb: float


def start(name: str, command: list[str], ready: str) -> Process:
    """A process of the service, as `make run` starts it, its log in var/bench."""
    process = Process(name, command, {**os.environ, **ENV}, WORK)
    try:
        process.wait_for_log(ready)
    except AssertionError:
        process.stop()
        raise SystemExit(f"{name} did not start; see {process.log_path}") from None
    return process


class PeakMemory:
    """The highest RSS of any one process of each group of services, sampled every 20 ms."""

    def __init__(self, services: dict[str, list[Process]]) -> None:
        self.services = services
        self.peak = dict.fromkeys(services, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for name, group in self.services.items():
                for pid in (pid for service in group for pid in service.pids()):
                    self.peak[name] = max(self.peak[name], rss_mb(pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def prepare() -> None:
    # Uploads of earlier runs (kept for replays in a real deployment) only fill the disk here.
    shutil.rmtree(WORK / "uploads", ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    setup = subprocess.run(
        [sys.executable, "-m", "server.setup"],
        env={**os.environ, **ENV},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if setup.returncode:
        raise SystemExit(setup.stdout + setup.stderr)
    DB.execute("CREATE SCHEMA IF NOT EXISTS bench")
    for table in ("baseline", "pipeline", "small"):
        DB.execute(
            f"DROP TABLE IF EXISTS bench.{table}; CREATE TABLE bench.{table} {benchdata.TABLE_DDL}"
        )


def timed_psql(*args: str, script: str | None = None) -> float:
    """How long `psql` takes to run, in the benchmark's database (stopping at an error)."""
    start = time.perf_counter()
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", DSN, *args]
    subprocess.run(command, input=script, text=True, check=True)
    return time.perf_counter() - start


def psql_copy(path: Path) -> float:
    DB.execute("TRUNCATE bench.baseline")
    return timed_psql("-c", f"\\copy bench.baseline FROM '{path}' WITH (FORMAT csv, HEADER true)")


def upload(
    http: httpx.Client, path: Path, target: str, fields: dict[str, str] | None = None
) -> dict[str, Any]:
    with path.open("rb") as file:
        response = http.post(
            "/imports",
            data={"target": target, **(fields or {})},
            files={"file": (path.name, file, "text/csv")},
        )
    if response.status_code != 202:
        raise SystemExit(f"upload refused: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


def until_done(http: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    event = final_event(http, f"/imports/{job['id']}/events")
    if event.kind != "completed":
        raise SystemExit(f"job {job['id']} ended {event.kind}: {event.data}")
    return event.data


def pipeline(http: httpx.Client, path: Path) -> tuple[float, dict[str, float]]:
    """The whole time, and where it went: the upload, the wait for a worker, the load, and
    the final event's way back."""
    DB.execute("TRUNCATE bench.pipeline")
    start = time.perf_counter()
    job = upload(http, path, "bench.pipeline")
    uploaded = time.perf_counter()
    until_done(http, job)
    end = time.perf_counter()
    return end - start, parts(job["id"], uploaded - start, end - start)


def parts(job_id: str, upload: float, seconds: float) -> dict[str, float]:
    """Where an import's time went: the upload, the wait for a worker, the load, and the
    final event's way back."""
    ((waited, loaded),) = DB.rows(
        "SELECT extract(epoch FROM started_at - created_at), "
        "extract(epoch FROM finished_at - started_at) FROM import_jobs WHERE id = %s",
        (job_id,),
    )
    split = {"upload": upload, "queue": float(waited), "load": float(loaded)}
    split["event"] = seconds - sum(split.values())
    return split


@contextmanager
def services(workers: bool = True) -> Iterator[dict[str, Process]]:
    """The API, and unless told otherwise the workers (`start_workers` starts them later)."""
    running: dict[str, Process] = {}
    try:
        running["api"] = start(
            "api", api_command("127.0.0.1", PORT, "--no-access-log"), "Uvicorn running"
        )
        if workers:
            start_workers(running)
        yield running
    finally:
        for process in reversed(running.values()):
            process.stop()


def start_workers(running: dict[str, Process]) -> None:
    running["worker"] = start("worker", worker_command(get_settings().worker_concurrency), "ready.")
    running["express"] = start("express", express_command(), "ready.")


def stop_workers(running: dict[str, Process]) -> None:
    for name in ("express", "worker"):
        running.pop(name).stop()


def measure(http: httpx.Client, running: dict[str, Process], rows: int, runs: int) -> Figures:
    path = benchdata.write(WORK / f"rows-{rows}.csv", rows)
    samples: list[tuple[float, float]] = []
    workers = [running["worker"], running["express"]]
    with PeakMemory({"api": [running["api"]], "worker": workers}) as memory:
        for run in range(1, runs + 1):
            baseline = psql_copy(path)
            ours, parts = pipeline(http, path)
            if DB.fingerprint("bench.baseline") != DB.fingerprint("bench.pipeline"):
                raise SystemExit("the pipeline's table differs from psql's: see var/bench")
            where = ", ".join(f"{name} {seconds:.2f}" for name, seconds in parts.items())
            print(
                f"  run {run}: psql \\copy {baseline:.2f} s, pipeline {ours:.2f} s ({where}), "
                f"ratio {ours / baseline:.2f}",
                flush=True,
            )
            samples.append((baseline, ours))
    # Each run's ratio compares two times taken moments apart, on the same machine load.
    ratio = statistics.median(ours / baseline for baseline, ours in samples)
    baseline = statistics.median(sample[0] for sample in samples)
    ours = statistics.median(sample[1] for sample in samples)
    return Figures(
        rows,
        round(path.stat().st_size / 1e6, 1),
        round(baseline, 2),
        round(ours, 2),
        round(ratio, 2),
        round(rows / ours),
        round(memory.peak["worker"], 1),
        round(memory.peak["api"], 1),
    )


def small_during(http: httpx.Client, rows: int) -> dict[str, float]:
    """Start a big import, and once it loads, a 100-row one: how long does the small wait?"""
    big = benchdata.write(WORK / f"rows-{rows}.csv", rows)
    small = benchdata.write(WORK / "rows-100.csv", 100)
    DB.execute("TRUNCATE bench.pipeline; TRUNCATE bench.small")
    big_job = upload(http, big, "bench.pipeline")
    for event in events(http, f"/imports/{big_job['id']}/events"):
        if event.kind == "progress":
            break
    start = time.perf_counter()
    until_done(http, upload(http, small, "bench.small"))
    small_seconds = time.perf_counter() - start
    print(f"  100-row import while a {rows:,}-row one runs: {small_seconds:.2f} s", flush=True)
    until_done(http, big_job)
    return {"big_rows": rows, "small_seconds": round(small_seconds, 2)}


def upload_only(http: httpx.Client, running: dict[str, Process], rows: int) -> dict[str, float]:
    """API memory while it receives a big file (the job is cancelled right after)."""
    path = benchdata.write(WORK / f"rows-{rows}.csv", rows)
    before = rss_mb(running["api"].popen.pid)
    with PeakMemory({"api": [running["api"]]}) as memory:
        start = time.perf_counter()
        job = upload(http, path, "bench.pipeline")
        seconds = time.perf_counter() - start
    http.post(f"/imports/{job['id']}/cancel")
    peak = memory.peak["api"]
    figures = {
        "megabytes": round(path.stat().st_size / 1e6),
        "upload_seconds": round(seconds, 2),
        "api_rss_before_mb": round(before, 1),
        "api_rss_peak_mb": round(peak, 1),
        "api_rss_growth_mb": round(peak - before, 1),
    }
    print(
        f"  upload of {figures['megabytes']} MB: API RSS {before:.1f} MB before, "
        f"{peak:.1f} MB at most (+{figures['api_rss_growth_mb']} MB)",
        flush=True,
    )
    return figures


def overlap(http: httpx.Client, rows: int, share: float = 0.05) -> dict[str, Any]:
    """Yesterday's export overlapping today's: the first `share` of the file's keys are in
    the table already. Every other row must land, those be refused as duplicates, in one
    job, next to psql's \\copy of the whole file into an empty table."""
    path = benchdata.write(WORK / f"rows-{rows}.csv", rows)
    taken = int(rows * share)
    baseline = psql_copy(path)
    DB.execute(
        "TRUNCATE bench.pipeline; INSERT INTO bench.pipeline SELECT * FROM bench.baseline "
        "WHERE id <= %s",
        (taken,),
    )
    start = time.perf_counter()
    job = upload(http, path, "bench.pipeline")
    final = until_done(http, job)
    seconds = time.perf_counter() - start
    if (final["rows_loaded"], final["rows_refused"]) != (rows - taken, taken):
        raise SystemExit(f"expected {rows - taken} loaded and {taken} refused: {final}")
    if DB.fingerprint("bench.baseline") != DB.fingerprint("bench.pipeline"):
        raise SystemExit("the table differs from psql's copy of the whole file")
    figures = {
        "rows": rows,
        "already_there": taken,
        "baseline_seconds": round(baseline, 2),
        "pipeline_seconds": round(seconds, 2),
        "ratio": round(seconds / baseline, 2),
    }
    print(
        f"  {rows:,} rows, the first {taken:,} keys already in the table: psql \\copy of the "
        f"whole file {baseline:.2f} s, pipeline {seconds:.2f} s ({taken:,} refused as "
        f"duplicates), ratio {seconds / baseline:.2f}",
        flush=True,
    )
    return figures


def upsert(http: httpx.Client, rows: int, runs: int) -> dict[str, Any]:
    """An upsert of the file into a table that holds an older version of every tenth row,
    next to what psql does for it: `\\copy` into a temporary table, then INSERT ... ON
    CONFLICT DO UPDATE, in one transaction. Medians of `runs`."""
    path = benchdata.write(WORK / f"rows-{rows}.csv", rows)
    psql_copy(path)
    DB.execute(
        "DROP TABLE IF EXISTS bench.before; CREATE TABLE bench.before AS SELECT id, email, "
        "name, born, 0::numeric(12,2) AS balance, country, active, 'older' AS note "
        "FROM bench.baseline WHERE id % 10 = 0"
    )
    samples = []
    for run in range(1, runs + 1):
        baseline = _timed_psql_upsert(path)
        DB.execute("TRUNCATE bench.pipeline; INSERT INTO bench.pipeline SELECT * FROM bench.before")
        start = time.perf_counter()
        job = upload(http, path, "bench.pipeline", {"mode": "upsert", "key": "pipeline_pkey"})
        final = until_done(http, job)
        seconds = time.perf_counter() - start
        if (final["rows_loaded"], final["rows_refused"]) != (rows, 0):
            raise SystemExit(f"expected {rows} loaded and none refused: {final}")
        if DB.fingerprint("bench.baseline") != DB.fingerprint("bench.pipeline"):
            raise SystemExit("the upserted table differs from psql's upsert")
        print(
            f"  run {run}: {rows:,} rows upserted (a tenth of them there already): psql "
            f"{baseline:.2f} s, pipeline {seconds:.2f} s, ratio {seconds / baseline:.2f}",
            flush=True,
        )
        samples.append((baseline, seconds))
    baseline = statistics.median(sample[0] for sample in samples)
    seconds = statistics.median(sample[1] for sample in samples)
    return {
        "rows": rows,
        "baseline_seconds": round(baseline, 2),
        "pipeline_seconds": round(seconds, 2),
        "ratio": round(statistics.median(ours / base for base, ours in samples), 2),
    }


def european(http: httpx.Client, rows: int) -> dict[str, Any]:
    """The benchmark's rows as a German spreadsheet exports them (`;`, CRLF, `-1.234,56`,
    `31.12.1990`, written with Babel's locale data), uploaded with no field saying so, next
    to psql's \\copy of the same rows written plainly and to the pipeline's own load of the
    plain file. Every table must be equal."""
    plain = benchdata.write(WORK / f"rows-{rows}.csv", rows)
    local = WORK / f"rows-{rows}-de_DE.csv"
    if not local.exists():
        _write_german(plain, local)
    baseline = psql_copy(plain)
    seconds, landed = {}, {}
    for kind, path in (("plain", plain), ("german", local)):
        DB.execute("TRUNCATE bench.pipeline")
        start = time.perf_counter()
        job = upload(http, path, "bench.pipeline")
        final = until_done(http, job)
        seconds[kind] = time.perf_counter() - start
        if (final["rows_loaded"], final["rows_refused"]) != (rows, 0):
            raise SystemExit(f"expected {rows} loaded and none refused: {final}")
        if DB.fingerprint("bench.baseline") != DB.fingerprint("bench.pipeline"):
            raise SystemExit(f"the table from the {kind} file differs from psql's copy")
        landed[kind] = http.get(f"/imports/{job['id']}").json()
    german = landed["german"]
    print(
        f"  {rows:,} rows as a German export ({german['decimal']!r} decimals, "
        f"{german['date_format']}): psql \\copy of the plain file {baseline:.2f} s; pipeline: "
        f"the plain file {seconds['plain']:.2f} s (ratio {seconds['plain'] / baseline:.2f}), "
        f"the German export {seconds['german']:.2f} s (ratio {seconds['german'] / baseline:.2f}, "
        f"{german['rows_careful']:,} rows the careful way)",
        flush=True,
    )
    return {
        "rows": rows,
        "baseline_seconds": round(baseline, 2),
        "plain_seconds": round(seconds["plain"], 2),
        "pipeline_seconds": round(seconds["german"], 2),
        "ratio": round(seconds["german"] / baseline, 2),
        "rows_careful": german["rows_careful"],
    }


PACKERS = ("gzip", "zstd", "zip", "xlsx")


def packed(http: httpx.Client, running: dict[str, Process], rows: int) -> list[dict[str, Any]]:
    """The rows plain, gzipped, in zstd, zipped and as an xlsx sheet, each uploaded and loaded in
    turn, next to psql's \\copy of the plain file: the time, the rows a second, and the
    API's peak memory (where the unpacking and the sheet's reading happen)."""
    plain = benchdata.write(WORK / f"rows-{rows}.csv", rows)
    files = {"plain": plain, **{kind: _packed(plain, kind) for kind in PACKERS}}
    baseline = psql_copy(plain)
    figures = []
    for kind, path in files.items():
        DB.execute("TRUNCATE bench.pipeline")
        with PeakMemory({"api": [running["api"]]}) as memory:
            start = time.perf_counter()
            until_done(http, upload(http, path, "bench.pipeline"))
            seconds = time.perf_counter() - start
        if DB.fingerprint("bench.baseline") != DB.fingerprint("bench.pipeline"):
            raise SystemExit(f"the table loaded from the {kind} file differs from psql's copy")
        figures.append(
            {
                "file": kind,
                "megabytes": round(path.stat().st_size / 1e6, 1),
                "pipeline_seconds": round(seconds, 2),
                "ratio": round(seconds / baseline, 2),
                "rows_per_second": round(rows / seconds),
                "api_peak_mb": round(memory.peak["api"], 1),
            }
        )
        print(
            f"  {kind:>5}: {figures[-1]['megabytes']:>7} MB, pipeline {seconds:.2f} s, ratio "
            f"{seconds / baseline:.2f} to psql \\copy of the plain file ({baseline:.2f} s), "
            f"{rows / seconds:,.0f} rows/s, API peak RSS {memory.peak['api']:.1f} MB",
            flush=True,
        )
    return figures


def _packed(plain: Path, kind: str) -> Path:
    """The plain file packed as `kind`, made once and kept beside it."""
    path = plain.with_suffix(f".csv.{kind}" if kind != "xlsx" else ".xlsx")
    if path.exists():
        return path
    partial = path.with_suffix(".part")
    if kind == "gzip":
        with plain.open("rb") as source, gzip.open(partial, "wb", compresslevel=6) as out:
            shutil.copyfileobj(source, out, 1 << 20)
    elif kind == "zstd":
        with plain.open("rb") as source, zstd.open(partial, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    elif kind == "zip":
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(plain, plain.name)
    else:
        _write_sheet(plain, partial)
    partial.rename(path)
    return path


def _write_sheet(plain: Path, path: Path) -> None:
    """The rows as typed cells, written by openpyxl as a spreadsheet saves them."""
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("rows")
    with plain.open(newline="") as source:
        reader = csv.reader(source)
        sheet.append(next(reader))
        for key, email, name, born, balance, country, active, note in reader:
            sheet.append(
                [
                    int(key),
                    email,
                    name,
                    date.fromisoformat(born) if born else None,
                    float(balance) if balance else None,
                    country or None,
                    {"true": True, "false": False}.get(active),
                    note or None,
                ]
            )
    book.save(path)


def _write_german(plain: Path, local: Path) -> None:
    from babel.numbers import format_decimal  # a development dependency, as the tests'

    with plain.open(newline="") as source, local.open("w", newline="") as out:
        reader = csv.reader(source)
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(next(reader))
        at = {name: benchdata.COLUMNS.index(name) for name in ("born", "balance")}
        for row in reader:
            year, month, day = row[at["born"]].split("-")
            row[at["born"]] = f"{day}.{month}.{year}"
            amount = Decimal(row[at["balance"]])
            row[at["balance"]] = format_decimal(amount, format="#,##0.00", locale="de_DE")
            writer.writerow(row)


def _timed_psql_upsert(path: Path) -> float:
    DB.execute("TRUNCATE bench.baseline; INSERT INTO bench.baseline SELECT * FROM bench.before")
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in benchdata.COLUMNS[1:])
    lines = [
        "BEGIN;",
        "CREATE TEMP TABLE incoming (LIKE bench.baseline) ON COMMIT DROP;",
        f"\\copy incoming FROM '{path}' WITH (FORMAT csv, HEADER true)",
        "INSERT INTO bench.baseline SELECT * FROM incoming",
        f"ON CONFLICT (id) DO UPDATE SET {updates};",
        "COMMIT;",
    ]
    return timed_psql(script="\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small-during", type=int, metavar="ROWS")
    parser.add_argument("--upload-only", type=int, metavar="ROWS")
    parser.add_argument(
        "--overlap",
        type=int,
        metavar="ROWS",
        help="an append whose first 5%% of keys are in the table already",
    )
    parser.add_argument(
        "--upsert",
        type=int,
        nargs="+",
        metavar="ROWS",
        help="upserts into a table holding every tenth row, next to psql's own upsert",
    )
    parser.add_argument(
        "--european",
        type=int,
        metavar="ROWS",
        help="the rows as a German spreadsheet exports them, next to psql's copy of them plain",
    )
    parser.add_argument(
        "--packed",
        type=int,
        metavar="ROWS",
        help="the rows gzipped, zipped and as an xlsx sheet, next to the plain file",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    prepare()
    report: dict[str, Any] = {}
    headers = bearer(make_key(ENV["DATABASE_URL"], "bench", name="benchmark"))
    with (
        services() as running,
        httpx.Client(base_url=f"http://127.0.0.1:{PORT}", headers=headers, timeout=600) as http,
    ):
        if args.upload_only:
            report["upload"] = upload_only(http, running, args.upload_only)
        elif args.packed:
            report["packed"] = packed(http, running, args.packed)
        elif args.european:
            report["european"] = european(http, args.european)
        elif args.overlap:
            report["overlap"] = overlap(http, args.overlap)
        elif args.upsert:
            report["upserts"] = [upsert(http, rows, args.runs) for rows in args.upsert]
        elif args.small_during:
            report["small_during"] = small_during(http, args.small_during)
        else:
            report["loads"] = [
                asdict(measure(http, running, rows, args.runs)) for rows in args.rows
            ]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report.get("loads", []))
    return 0


def print_table(loads: list[dict[str, Any]]) -> None:
    for load in loads:
        print(
            f"{load['rows']:>10,} rows ({load['megabytes']} MB): "
            f"psql \\copy {load['baseline_seconds']:.2f} s | "
            f"pipeline {load['pipeline_seconds']:.2f} s | ratio {load['ratio']:.2f} | "
            f"{load['rows_per_second']:,} rows/s | worker peak RSS {load['worker_peak_mb']} MB"
            f" | API peak RSS {load['api_peak_mb']} MB"
        )


if __name__ == "__main__":
    sys.exit(main())
