"""What the tests and the benchmarks both need to drive the real service: its processes,
a database to look into, API keys, and its event streams.

Processes are started with the service's own command lines (server/run.py), each in its own
process group with its output in a log file.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg2
from sqlalchemy import create_engine

from server.client import Event, read_events
from server.jobs.status import FINISHED
from server.keys.keys import create_key
from server.run import api_command, worker_command

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], Any], timeout: float, why: Callable[[], str] | str = "", every: float = 0.05
) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(why() if callable(why) else why or "timed out")


# --- processes ---------------------------------------------------------------------------


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path = ROOT,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        def seen() -> bool:
            if self.popen.poll() is not None and text not in self.log():
                raise AssertionError(f"the process ended before {text!r}:\n{self.log()[-3000:]}")
            return text in self.log()

        wait_until(
            seen, timeout, lambda: f"{text!r} never appeared in the log:\n{self.log()[-3000:]}"
        )

    def pids(self) -> list[int]:
        """The process and its children (a worker's pool processes)."""
        pid = self.popen.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        found = children.read_text().split() if children.exists() else []
        return [pid, *map(int, found)]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self, grace: float = 10) -> None:
        """SIGTERM (a worker finishes its task, coverage saves what it measured), then
        SIGKILL if the process has not ended within `grace` seconds."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def start_api(env: Mapping[str, str], log_dir: Path, port: int, *extra: str) -> Process:
    api = Process("api", api_command("127.0.0.1", port, *extra), env, log_dir)
    api.wait_for_log("Application startup complete")
    return api


def start_worker(
    env: Mapping[str, str], log_dir: Path, concurrency: int = 1, queues: Sequence[str] = ()
) -> Process:
    """A worker for all queues, or for some; each named apart, as on separate hosts."""
    name = f"{'-'.join(queues) or 'worker'}-{uuid.uuid4().hex[:6]}@%h"
    quiet = env.get("LOG_FORMAT") == "json"  # no banner: every line is JSON
    worker = Process("worker", worker_command(concurrency, queues, name, quiet), env, log_dir)
    worker.wait_for_log("ready.")
    return worker


def rss_mb(pid: int) -> float:
    """A process's resident memory, 0 if it is gone."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the database ------------------------------------------------------------------------


class Database:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn.replace("postgresql+psycopg2://", "postgresql://")

    def connect(self) -> Any:
        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        return connection

    def execute(self, statement: str, params: Any = None) -> None:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
        finally:
            connection.close()

    def rows(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def value(self, statement: str, params: Any = None) -> Any:
        return self.rows(statement, params)[0][0]

    def checksum(self, table: str, order_by: str = "id") -> tuple[int, str]:
        """Row count and a hash of the rows in order: equal for equal tables."""
        found: tuple[int, str] = self.rows(
            f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY {order_by})), '') "
            f"FROM {table} t"
        )[0]
        return found

    def fingerprint(self, table: str) -> tuple[int, int]:
        """Row count and an order-free sum of row hashes: equal for equal tables, even
        tables without a key to order by."""
        count, total = self.rows(
            "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint), 0)"
            f" FROM {table} t"
        )[0]
        return int(count), int(total)

    def copy_csv(
        self, table: str, content: bytes, options: str = "FORMAT csv, HEADER true"
    ) -> None:
        """PostgreSQL's own CSV parser: the oracle the pipeline is checked against."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.copy_expert(f"COPY {table} FROM STDIN WITH ({options})", io.BytesIO(content))
        finally:
            connection.close()

    def reference(self, table: str, content: bytes) -> str:
        """`table` filled by PostgreSQL's own COPY of the file: what an import must equal."""
        self.copy_csv(table, content)
        return table


def make_key(
    database_url: str,
    tenant: str,
    targets: Sequence[str] | None = None,
    name: str = "made by a test",
    operator: bool = False,
) -> str:
    """A new API key, made by the same code as the operator's command."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            return create_key(connection, tenant, name, targets, operator)[1]
    finally:
        engine.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- event streams -----------------------------------------------------------------------


def events(
    http: httpx.Client,
    url: str,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Iterator[Event]:
    """A job's events as they come, until the stream ends or the caller stops reading."""
    with http.stream("GET", url, headers=headers, timeout=timeout) as response:
        response.raise_for_status()
        yield from read_events(response.iter_lines())


def final_event(http: httpx.Client, url: str, timeout: float | None = None) -> Event:
    """The job's last event, once it has ended."""
    for event in events(http, url, timeout=timeout):
        if event.kind in FINISHED:
            return event
    raise AssertionError(f"the event stream {url} ended without a final event")
