r"""The service side of speed: many small jobs at once, and many watchers of one job.

    python scripts/bench_service.py --burst 1000 --clients 50    # 100-row uploads
    python scripts/bench_service.py --watchers 10000             # of one 2,000,000-row import
    python scripts/bench_service.py --scaling 1,2,4 --files 8      # throughput, 1/2/4 workers
    python scripts/bench_service.py --json

--burst: JOBS uploads of a 100-row file from CLIENTS clients at once, each client uploading,
then following its job's event stream to the final event, then uploading the next. Prints
the jobs per second over the whole burst and the time from upload to final event (median,
90th and 99th percentile, worst). Every job must complete and every row land.

--watchers: a big import watched by N event-stream subscribers on one API process, each run
between two runs of the same import watched by one (medians compared). The subscribers
connect while the job waits for a worker; the workers start once all have the job's state.
Every subscriber must get its final event. Prints how long connecting them took, the load's
time with one watcher and with N, the longest gap between two events of the running job that
any subscriber saw, and the CPU time of the API and of the watchers while the job loaded.

--scaling: FILES files of ROWS rows imported at once (each into a table of its own) by 1, 2
and 4 worker processes (a worker of that concurrency), beside `psql \copy` of the same
files run as as many processes at once: the rows per second of each, and the speed-up over
one process. Where the speed-up stops growing, PostgreSQL (its cores, its WAL) is the limit,
not the number of workers.

The API and the workers run as `make run` starts them, in the benchmarks' own database,
virtual host and Redis database (see scripts/bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
import benchdata

from server.client import read_events
from server.jobs.status import FINISHED
from server.run import worker_command
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


async def _burst(
    headers: dict[str, str], clients: int, files: list[bytes]
) -> tuple[float, list[float]]:
    """The burst's whole time, and each job's time from upload to final event."""
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
    return seconds, latencies


def burst(headers: dict[str, str], jobs: int, clients: int, rows: int) -> dict[str, Any]:
    bench.DB.execute("TRUNCATE bench.small")
    seconds, latencies = asyncio.run(_burst(headers, clients, small_files(jobs, rows)))
    ((landed,),) = bench.DB.rows("SELECT count(*) FROM bench.small")
    if landed != jobs * rows:
        raise SystemExit(f"{landed} rows landed, {jobs * rows} expected")
    ordered = sorted(latencies)
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


class Watcher:
    """One event-stream subscriber on a bare socket: it only notes when each event came."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.running: list[float] = []  # arrivals of events of the running job
        self.final: str | None = None

    async def watch(self, path: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", bench.PORT)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"event stream refused: {head[:80]!r}")
        buffer = b""
        while self.final is None:
            chunk = await reader.read(65536)
            if not chunk:
                break
            *events, buffer = (buffer + chunk).split(b"\r\n\r\n")
            self._note(events, time.perf_counter())
        writer.close()

    def _note(self, events: list[bytes], now: float) -> None:
        for event in events:
            if b"event: " not in event:
                continue  # a ping
            self.connected.set()
            if b'"status": "running"' in event:
                self.running.append(now)
            for status in FINISHED:
                if f"event: {status}".encode() in event:
                    self.final = status
                    self.running.append(now)

    @property
    def longest_gap(self) -> float:
        pairs = zip(self.running, self.running[1:], strict=False)
        return max((later - earlier for earlier, later in pairs), default=0.0)


async def _watched_import(
    running: dict[str, Any], headers: dict[str, str], path: Path, count: int
) -> dict[str, Any]:
    bench.DB.execute("TRUNCATE bench.pipeline")
    with httpx.Client(base_url=f"http://127.0.0.1:{bench.PORT}", headers=headers) as http:
        job = bench.upload(http, path, "bench.pipeline")
    url = httpx.URL(job["events_url"])
    target = url.raw_path.decode()
    watchers = [Watcher() for _ in range(count)]
    start = time.perf_counter()
    tasks = []
    for wave in range(0, count, 500):  # within the listen backlog
        for watcher in watchers[wave : wave + 500]:
            tasks.append(asyncio.create_task(watcher.watch(target)))
        await asyncio.gather(*(watcher.connected.wait() for watcher in watchers[: wave + 500]))
    connected = time.perf_counter() - start
    api_cpu, own_cpu = cpu_seconds(running["api"].popen.pid), time.process_time()
    await asyncio.to_thread(bench.start_workers, running)
    await asyncio.gather(*tasks)
    api_cpu, own_cpu = (
        cpu_seconds(running["api"].popen.pid) - api_cpu,
        time.process_time() - own_cpu,
    )
    await asyncio.to_thread(bench.stop_workers, running)
    finals = {watcher.final for watcher in watchers}
    if finals != {"completed"}:
        raise SystemExit(f"final events seen: {finals}")
    seconds = bench.parts(job["id"], 0.0, 0.0)["load"]
    return {
        "watchers": count,
        "connect_seconds": round(connected, 2),
        "load_seconds": round(seconds, 2),
        "longest_gap": round(max(watcher.longest_gap for watcher in watchers), 2),
        "fewest_events": min(len(watcher.running) for watcher in watchers),
        "api_cpu_seconds": round(api_cpu, 2),
        "watchers_cpu_seconds": round(own_cpu, 2),
    }


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watchers(
    running: dict[str, Any], headers: dict[str, str], count: int, rows: int, runs: int
) -> dict[str, Any]:
    path = benchdata.write(bench.WORK / f"rows-{rows}.csv", rows)
    done = []
    for n in [1, *([count, 1] * runs)]:
        # The watchers share the machine with what they watch: uvloop keeps them cheap.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            done.append(runner.run(_watched_import(running, headers, path, n)))
        print(
            f"  {n:>6} watchers of a {rows:,}-row import: connected in "
            f"{done[-1]['connect_seconds']:.2f} s, load {done[-1]['load_seconds']:.2f} s, "
            f"longest gap between events {done[-1]['longest_gap']:.2f} s, fewest events "
            f"{done[-1]['fewest_events']}; CPU while it loaded: API "
            f"{done[-1]['api_cpu_seconds']:.2f} s, "
            f"watchers {done[-1]['watchers_cpu_seconds']:.2f} s",
            flush=True,
        )
    alone = statistics.median(run["load_seconds"] for run in done if run["watchers"] == 1)
    watched = statistics.median(run["load_seconds"] for run in done if run["watchers"] > 1)
    slower = watched / alone
    print(
        f"  median load with {count} watchers {watched:.2f} s, with one {alone:.2f} s: "
        f"{slower:.2f}x; longest gap {max(run['longest_gap'] for run in done):.2f} s",
        flush=True,
    )
    return {"runs": done, "slowdown": round(slower, 2)}


def scaling(
    headers: dict[str, str], counts: list[int], files: int, rows: int
) -> list[dict[str, Any]]:
    path = benchdata.write(bench.WORK / f"rows-{rows}.csv", rows)
    tables = [f"bench.scale_{n}" for n in range(files)]
    for table in tables:
        bench.DB.execute(
            f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} {benchdata.TABLE_DDL}"
        )
    found: list[dict[str, Any]] = []
    single = 0.0  # the first count's time, which the others are compared with
    for count in counts:
        baseline = _parallel_psql(path, tables, count)
        worker = bench.start("worker", worker_command(count), "ready.")
        try:
            ours = _imports_at_once(headers, path, tables, rows)
        finally:
            worker.stop()
        total = files * rows
        figures = {
            "workers": count,
            "psql_seconds": round(baseline, 2),
            "psql_rows_per_second": round(total / baseline),
            "pipeline_seconds": round(ours, 2),
            "pipeline_rows_per_second": round(total / ours),
        }
        single = single or ours
        figures["speedup"] = round(single / ours, 2)
        found.append(figures)
        print(
            f"  {count} worker process(es), {files} files of {rows:,} rows at once: psql \\copy "
            f"x{count} {baseline:.2f} s ({figures['psql_rows_per_second']:,} rows/s), pipeline "
            f"{ours:.2f} s ({figures['pipeline_rows_per_second']:,} rows/s), speed-up "
            f"{figures['speedup']}x",
            flush=True,
        )
    best = max(found, key=lambda f: f["pipeline_rows_per_second"])
    print(f"  the most throughput at {best['workers']} worker process(es) on this machine")
    return found


def _parallel_psql(path: Path, tables: list[str], count: int) -> float:
    """`psql \\copy` of the file into each table, `count` at a time."""
    for table in tables:
        bench.DB.execute(f"TRUNCATE {table}")
    command = "\\copy {} FROM '{}' WITH (FORMAT csv, HEADER true)"
    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda table: bench.timed_psql("-c", command.format(table, path)), tables))
    return time.perf_counter() - start


def _imports_at_once(headers: dict[str, str], path: Path, tables: list[str], rows: int) -> float:
    """Every file uploaded at once, and the time until the last import completes."""
    for table in tables:
        bench.DB.execute(f"TRUNCATE {table}")
    url = f"http://127.0.0.1:{bench.PORT}"
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        start = time.perf_counter()
        jobs = [bench.upload(http, path, table) for table in tables]
        for job in jobs:
            bench.until_done(http, job)
        seconds = time.perf_counter() - start
    for table in tables:
        ((landed,),) = bench.DB.rows(f"SELECT count(*) FROM {table}")  # noqa: S608 - ours
        if landed != rows:
            raise SystemExit(f"{table}: {landed} rows landed")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, metavar="JOBS")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100, help="rows per job of the burst")
    parser.add_argument("--watchers", type=int, metavar="N")
    parser.add_argument("--watch-rows", type=int, default=2_000_000)
    parser.add_argument("--watch-runs", type=int, default=2, help="runs with N watchers")
    parser.add_argument("--scaling", metavar="COUNTS", help="worker processes, e.g. 1,2,4")
    parser.add_argument("--files", type=int, default=8, help="files imported at once")
    parser.add_argument("--scale-rows", type=int, default=250_000, help="rows per file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bench.prepare()
    headers = bearer(make_key(bench.ENV["DATABASE_URL"], "bench", name="service benchmark"))
    report: dict[str, Any] = {}
    with bench.services(workers=False) as running:
        if args.watchers:
            report["watchers"] = watchers(
                running, headers, args.watchers, args.watch_rows, args.watch_runs
            )
        if args.scaling:
            counts = [int(count) for count in args.scaling.split(",")]
            report["scaling"] = scaling(headers, counts, args.files, args.scale_rows)
        if args.burst:
            bench.start_workers(running)
            report["burst"] = burst(headers, args.burst, args.clients, args.rows)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
