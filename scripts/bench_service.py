"""The service side of speed: many small jobs at once, and many watchers of one job.

    python scripts/bench_service.py --burst 1000 --clients 50    # 100-row uploads
    python scripts/bench_service.py --watchers 10000             # of one 1,000,000-row import
    python scripts/bench_service.py --json

--burst: JOBS uploads of a 100-row file from CLIENTS clients at once, each client uploading,
then following its job's event stream to the final event, then uploading the next. Prints
the jobs per second over the whole burst and the time from upload to final event (median,
90th and 99th percentile, worst). Every job must complete and every row land.

--watchers: a big import watched by N event-stream subscribers on one API process, next to
the same import watched by one. Every subscriber must see progress at least once a second
while the import runs, then its final event. Prints how long connecting them took, the
import's time with one watcher and with N, and the longest gap any subscriber saw.

The API and the workers run as `make run` starts them, in the benchmarks' own database,
virtual host and Redis database (see scripts/bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
import benchdata

from server.client import read_events
from server.jobs.status import FINISHED
from tests.harness import bearer, make_key


async def _follow(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """The final event's data, read from the job's event stream."""
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line:
                continue
            for event in read_events(lines):
                if event.kind in FINISHED:
                    return event.data
            lines = []
    raise SystemExit(f"{url}: the stream ended without a final event")


def small_files(jobs: int, rows: int) -> list[bytes]:
    """One file per job, the benchmark's rows with keys of their own."""
    lines = [line.partition(",")[2] for line in benchdata.rows(rows)]
    return [
        (
            benchdata.HEADER
            + "".join(f"{job * rows + key},{rest}" for key, rest in enumerate(lines, 1))
        ).encode()
        for job in range(jobs)
    ]


async def _client(
    http: httpx.AsyncClient, queue: asyncio.Queue[bytes], latencies: list[float]
) -> None:
    while True:
        try:
            content = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        start = time.perf_counter()
        response = await http.post(
            "/imports",
            data={"target": "bench.small"},
            files={"file": ("small.csv", content, "text/csv")},
        )
        if response.status_code != 202:
            raise SystemExit(f"upload refused: {response.status_code} {response.text}")
        final = await _follow(http, response.json()["events_url"])
        if final["status"] != "completed":
            raise SystemExit(f"a job ended {final['status']}: {final}")
        latencies.append(time.perf_counter() - start)


async def _burst(headers: dict[str, str], clients: int, files: list[bytes]) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for content in files:
        queue.put_nowait(content)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=2 * clients, max_keepalive_connections=2 * clients)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{bench.PORT}", headers=headers, timeout=600, limits=limits
    ) as http:
        start = time.perf_counter()
        await asyncio.gather(*(_client(http, queue, latencies) for _ in range(clients)))
        seconds = time.perf_counter() - start
    _LATENCIES[:] = latencies
    return seconds


_LATENCIES: list[float] = []


def burst(headers: dict[str, str], jobs: int, clients: int, rows: int) -> dict[str, Any]:
    bench.DB.execute("TRUNCATE bench.small")
    seconds = asyncio.run(_burst(headers, clients, small_files(jobs, rows)))
    ((landed,),) = bench.DB.rows("SELECT count(*) FROM bench.small")
    if landed != jobs * rows:
        raise SystemExit(f"{landed} rows landed, {jobs * rows} expected")
    ordered = sorted(_LATENCIES)
    figures = {
        "jobs": jobs,
        "clients": clients,
        "rows_per_job": rows,
        "seconds": round(seconds, 2),
        "jobs_per_second": round(jobs / seconds, 1),
        "latency_median": round(statistics.median(ordered), 3),
        "latency_p90": round(_percentile(ordered, 0.90), 3),
        "latency_p99": round(_percentile(ordered, 0.99), 3),
        "latency_max": round(ordered[-1], 3),
    }
    print(
        f"  {jobs} uploads of {rows} rows from {clients} clients: {seconds:.2f} s, "
        f"{figures['jobs_per_second']} jobs/s; upload to final event: median "
        f"{figures['latency_median']:.3f} s, p90 {figures['latency_p90']:.3f} s, "
        f"p99 {figures['latency_p99']:.3f} s, max {figures['latency_max']:.3f} s",
        flush=True,
    )
    return figures


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, metavar="JOBS")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100, help="rows per job of the burst")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bench.prepare()
    headers = bearer(make_key(bench.ENV["DATABASE_URL"], "bench", name="service benchmark"))
    report: dict[str, Any] = {}
    with bench.services():
        if args.burst:
            report["burst"] = burst(headers, args.burst, args.clients, args.rows)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
