"""Helpers for tests against the real services: processes, tables, files, waiting."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
TEST_SCHEMA = "importtest"
FINISHED = ("completed", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.log(), timeout,
                   lambda: f"{text!r} never appeared in the log:\n{self.log()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self._log.close()


def start_worker(env: dict[str, str], log_dir: Path, concurrency: int = 1,
                 queue: str | None = None) -> Process:
    command = [sys.executable, "-m", "celery", "-A", "server.work.celery_app", "worker",
               "--pool", "prefork", "--concurrency", str(concurrency), "--loglevel", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if queue is not None:
        command += ["--queues", queue, "--hostname", f"{queue}-{uuid.uuid4().hex[:6]}@%h"]
    worker = Process("worker", command, env, log_dir)
    worker.wait_for_log("ready.")
    return worker


def start_api(env: dict[str, str], log_dir: Path, port: int) -> Process:
    command = [sys.executable, "-m", "uvicorn", "server.api.app:app", "--host", "127.0.0.1",
               "--port", str(port)]
    api = Process("api", command, env, log_dir)
    api.wait_for_log("Application startup complete")
    return api


def wait_until(check: Callable[[], Any], timeout: float, why: Callable[[], str] | str = "",
               every: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(why() if callable(why) else why or "timed out")


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/imports/{job_id}").json()
        return job if job["status"] in FINISHED else None
    result: dict[str, Any] = wait_until(finished, timeout, f"job {job_id} did not finish",
                                        every=0.1)
    return result


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_command(*args: str) -> subprocess.CompletedProcess[str]:
    """The operator's key command, scripts/api_keys.py."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "api_keys.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def upload(client: httpx.Client, content: bytes, target: str, name: str = "data.csv",
           headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    return client.post("/imports", files={"file": (name, content, "text/csv")},
                       data={"target": target, **fields}, headers=headers or {})


# --- files -----------------------------------------------------------------------------

CUSTOMERS_DDL = """(
    id bigint PRIMARY KEY, email text NOT NULL, name text, signup_date date,
    balance numeric(12, 2), country char(2), active boolean, notes text)"""
CUSTOMER_COLUMNS = ["id", "email", "name", "signup_date", "balance", "country", "active",
                    "notes"]


def customer_rows(count: int, start: int = 1) -> Iterator[list[str]]:
    """Rows with every kind of field a real export has: quotes, commas, newlines, empties."""
    notes = ["", "plain", 'with "quotes"', "with, comma", "two\nlines", "ünïcödé ✓"]
    for i in range(start, start + count):
        yield [str(i), f"user{i}@example.com", f"Name {i}" if i % 7 else "",
               (date(2020, 1, 1) + timedelta(days=i % 1500)).isoformat(),
               f"{(i * 37) % 100000 / 100:.2f}", ["FR", "DE", "US", "JP"][i % 4],
               ["true", "false"][i % 2], notes[i % len(notes)]]


def csv_bytes(header: list[str], rows: Iterator[list[str]] | list[list[str]],
              delimiter: str = ",", encoding: str = "utf-8", newline: str = "\n") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


# --- database ----------------------------------------------------------------------------

class Database:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def connect(self) -> Any:
        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        return connection

    def execute(self, statement: str, params: Any = None) -> None:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params)

    def rows(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def value(self, statement: str, params: Any = None) -> Any:
        return self.rows(statement, params)[0][0]

    def checksum(self, table: str, order_by: str = "id") -> tuple[int, str]:
        return self.rows(f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY "
                         f"{order_by})), '') FROM {table} t")[0]

    def reference(self, table: str, content: bytes) -> str:
        """`table` filled by PostgreSQL's own COPY of the file: what an import must equal."""
        self.copy_csv(table, content)
        return table

    def copy_csv(self, table: str, content: bytes) -> None:
        """PostgreSQL's own CSV parser: the oracle the pipeline is checked against."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)",
                                   io.BytesIO(content))
        finally:
            connection.close()


# --- server-sent events ------------------------------------------------------------------

class Event:
    def __init__(self, kind: str, data: dict[str, Any], event_id: str | None) -> None:
        self.kind, self.data, self.id = kind, data, event_id

    def __repr__(self) -> str:
        return f"Event({self.kind}, {self.id}, {self.data.get('rows_loaded')})"


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Events from the lines of a text/event-stream body (comments and pings skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            if name:
                fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            yield Event(fields.get("event", "message"), json.loads(fields["data"]),
                        fields.get("id"))
        fields = {}
