"""Helpers for tests: test files, uploads, waiting for a job."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import httpx

from server import demo
from server.jobs.status import FINISHED
from tests.harness import ROOT, wait_until

TEST_SCHEMA = "importtest"


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/imports/{job_id}").json()
        return job if job["status"] in FINISHED else None

    result: dict[str, Any] = wait_until(
        finished, timeout, f"job {job_id} did not finish", every=0.1
    )
    return result


def keys_command(*args: str) -> subprocess.CompletedProcess[str]:
    """The operator's key command, scripts/api_keys.py."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "api_keys.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def upload(
    client: httpx.Client,
    content: bytes,
    target: str,
    name: str = "data.csv",
    headers: Mapping[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    return client.post(
        "/imports",
        files={"file": (name, content, "text/csv")},
        data={"target": target, **fields},
        headers=headers or {},
    )


# --- files -----------------------------------------------------------------------------

CUSTOMERS_DDL = demo.COLUMNS_DDL
CUSTOMER_COLUMNS = ["id", "email", "name", "signup_date", "balance", "country", "active", "notes"]


def customer_rows(count: int, start: int = 1) -> Iterator[list[str]]:
    """Rows with every kind of field a real export has: quotes, commas, newlines, empties."""
    notes = ["", "plain", 'with "quotes"', "with, comma", "two\nlines", "ünïcödé ✓"]
    for i in range(start, start + count):
        yield [
            str(i),
            f"user{i}@example.com",
            f"Name {i}" if i % 7 else "",
            (date(2020, 1, 1) + timedelta(days=i % 1500)).isoformat(),
            f"{(i * 37) % 100000 / 100:.2f}",
            ["FR", "DE", "US", "JP"][i % 4],
            ["true", "false"][i % 2],
            notes[i % len(notes)],
        ]


def csv_bytes(
    header: list[str],
    rows: Iterator[list[str]] | list[list[str]],
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\n",
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)
