"""The corpus of real files (scripts/corpus.py), each through the whole pipeline and through
PostgreSQL's own `psql \\copy`, side by side.

    python scripts/bench_corpus.py                  # every file: baseline, pipeline, ratio
    python scripts/bench_corpus.py --only nycflights13-flights ieee-oui
    python scripts/bench_corpus.py --careful        # the fast path off: the careful path alone
    python scripts/bench_corpus.py --latency        # small files as published, one job each
    python scripts/bench_corpus.py --json

For each file: a table with the file's columns, `psql \\copy` of the file into it with the
options that give it the service's meaning (the baseline), then the pipeline on the same
file into an identical table (from the first byte of the HTTP upload to the final
server-sent event, the API and workers running as `make run` starts them). Both tables must
hold the same rows. Each file is timed --runs times (3), each way, and the medians compared.
One line per file: baseline, pipeline, their ratio, rows per second, how many rows went the
careful way, and where the pipeline's time went (upload, wait for a worker, load, final
event); then the worst and the median ratio.

Small files are repeated (header once) to at least --min-rows rows, so that the ratio
measures loading, not the fixed cost of a job; `--latency` times the files as published,
from upload to the final event. Everything runs where scripts/bench.py runs (its own
database, virtual host and Redis database).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
import corpus

from tests.harness import bearer, make_key

TABLES = ("corpus_baseline", "corpus_pipeline")


@dataclass
class Figures:
    name: str
    variant: str
    rows: int
    megabytes: float
    baseline_seconds: float
    pipeline_seconds: float
    ratio: float
    rows_per_second: int
    careful_rows: int
    parts: dict[str, float]


def create_tables(file: corpus.CorpusFile) -> None:
    columns = ", ".join(f"{corpus.quote_ident(name)} {kind}" for name, kind in file.columns)
    for table in TABLES:
        bench.DB.execute(
            f"DROP TABLE IF EXISTS bench.{table}; CREATE TABLE bench.{table} ({columns})"
        )


def psql_copy(file: corpus.CorpusFile) -> float:
    copy = f"\\copy bench.{TABLES[0]} FROM '{file.path}' WITH ({file.copy_options})"
    return bench.timed_psql("-c", copy)


def pipeline(
    http: httpx.Client, file: corpus.CorpusFile, careful: bool
) -> tuple[float, dict[str, Any], dict[str, float]]:
    """The whole time of an import, the job at its end, and where the time went."""
    fields = dict(file.fields)
    if careful:
        # A second null marker that no file holds: COPY cannot be told two, so no record
        # takes the fast path (on this service and on versions without FAST_PATH alike).
        fields["null_markers"] = fields.get("null_markers", "") + ",\x1f"
    start = time.perf_counter()
    with file.path.open("rb") as content:
        response = http.post(
            "/imports",
            data={"target": f"bench.{TABLES[1]}", **fields},
            files={"file": (file.path.name, content, "text/csv")},
        )
    if response.status_code != 202:
        raise SystemExit(f"{file.name}: upload refused: {response.status_code} {response.text}")
    uploaded = time.perf_counter() - start
    job = response.json()
    bench.until_done(http, job)
    seconds = time.perf_counter() - start
    final: dict[str, Any] = http.get(job["url"]).json()
    return seconds, final, bench.parts(job["id"], uploaded, seconds)


def measure(http: httpx.Client, file: corpus.CorpusFile, careful: bool, runs: int) -> Figures:
    """The median of `runs` baselines and of as many pipelines, each table checked."""
    baselines, loads = [], []
    for _ in range(runs):
        create_tables(file)
        baselines.append(psql_copy(file))
        loads.append(pipeline(http, file, careful))
        check(file, loads[-1][1])
    baseline = statistics.median(baselines)
    seconds, job, split = sorted(loads, key=lambda load: load[0])[len(loads) // 2]
    size = file.path.stat().st_size / 1e6
    return Figures(
        file.name,
        file.variant,
        file.rows,
        round(size, 1),
        round(baseline, 2),
        round(seconds, 2),
        round(seconds / baseline, 2),
        round(file.rows / seconds),
        job["rows_careful"],
        {part: round(value, 3) for part, value in split.items()},
    )


def check(file: corpus.CorpusFile, job: dict[str, Any]) -> None:
    """Every row loaded, none refused, and the same rows as PostgreSQL's own COPY."""
    if (job["rows_loaded"], job["rows_refused"]) != (file.rows, 0):
        raise SystemExit(
            f"{file.name}: {job['rows_loaded']} loaded, {job['rows_refused']} "
            f"refused of {file.rows}: {job.get('error')}"
        )
    if bench.DB.fingerprint(f"bench.{TABLES[0]}") != bench.DB.fingerprint(f"bench.{TABLES[1]}"):
        raise SystemExit(f"{file.name}: the pipeline's table differs from psql's copy")


def print_line(figures: Figures) -> None:
    print(
        f"{figures.name:42} {figures.rows:>9,} rows {figures.megabytes:>6} MB | psql "
        f"{figures.baseline_seconds:6.2f} s | pipeline {figures.pipeline_seconds:6.2f} s | "
        f"ratio {figures.ratio:5.2f} | {figures.rows_per_second:>9,} rows/s | careful "
        f"{figures.careful_rows:,} | "
        + " ".join(f"{part} {value:.2f}" for part, value in figures.parts.items()),
        flush=True,
    )


def summary(loads: list[Figures]) -> dict[str, Any]:
    ratios = [load.ratio for load in loads]
    worst = max(loads, key=lambda load: load.ratio)
    rows = sum(load.rows for load in loads)
    seconds = sum(load.pipeline_seconds for load in loads)
    return {
        "files": len(loads),
        "worst_ratio": worst.ratio,
        "worst_file": worst.name,
        "median_ratio": round(statistics.median(ratios), 2),
        "rows_per_second": round(rows / seconds),
        "careful_rows": sum(load.careful_rows for load in loads),
    }


def latency(http: httpx.Client, files: list[corpus.CorpusFile]) -> dict[str, float]:
    """Small files as published: from the upload's first byte to the final event."""
    seconds = {}
    for file in files:
        create_tables(file)
        seconds[file.name] = round(pipeline(http, file, careful=False)[0], 3)
        print(f"{file.name:42} {file.rows:>9,} rows: {seconds[file.name]:.3f} s", flush=True)
    print(f"median latency {statistics.median(seconds.values()):.3f} s")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--min-rows", type=int, default=corpus.DEFAULT_MIN_ROWS)
    parser.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE)
    parser.add_argument("--runs", type=int, default=3, help="medians of this many runs")
    parser.add_argument("--careful", action="store_true", help="every record the careful way")
    parser.add_argument("--latency", action="store_true", help="small files, as published")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.careful:
        os.environ["FAST_PATH"] = "false"
    bench.prepare()
    min_rows = 1 if args.latency else args.min_rows
    files = corpus.build(args.cache, min_rows, args.only)
    if args.latency:
        files = [file for file in files if file.variant in (corpus.AS_PUBLISHED, "csv")]
    headers = bearer(make_key(bench.ENV["DATABASE_URL"], "bench", name="corpus benchmark"))
    report: dict[str, Any] = {}
    with (
        bench.services(),
        httpx.Client(
            base_url=f"http://127.0.0.1:{bench.PORT}", headers=headers, timeout=900
        ) as http,
    ):
        if args.latency:
            report["latency"] = latency(http, files)
        else:
            # The first import of a fresh service pays for its connections: not timed.
            create_tables(files[0])
            pipeline(http, files[0], args.careful)
            loads = []
            for file in files:
                loads.append(measure(http, file, args.careful, args.runs))
                print_line(loads[-1])
            report = {"files": [asdict(load) for load in loads], "summary": summary(loads)}
            print(" | ".join(f"{key} {value}" for key, value in report["summary"].items()))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
