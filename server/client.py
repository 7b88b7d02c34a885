"""Upload a CSV file and follow its import in the terminal.

    csv-import data.csv --target customers [--mode upsert] [--url URL]
    python scripts/import_csv.py data.csv --target customers      (the same, from a checkout)

The API key comes from --api-key, else from $CSV_IMPORT_API_KEY, else from var/api-key
(where `make run` puts the first key of a fresh install).

Exit codes: 0 completed, 1 failed or cancelled, 2 the upload was refused (a missing or
wrong key too) or the server is unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from server.jobs.status import AT_REST

console = Console(stderr=True)
KEY_FILE = Path("var/api-key")


class Reading:
    """A file whose reads move a progress bar (the upload's own progress)."""

    def __init__(self, file: BinaryIO, progress: Progress, task: TaskID) -> None:
        self.file, self.progress, self.task = file, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(size)
        self.progress.advance(self.task, len(chunk))
        return chunk


def upload(http: httpx.Client, path: Path, fields: dict[str, str]) -> dict[str, Any]:
    with (
        Progress(
            TextColumn("upload"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        ) as progress,
        path.open("rb") as file,
    ):
        task = progress.add_task("upload", total=path.stat().st_size)
        reading = cast(IO[bytes], Reading(file, progress, task))
        response = http.post(
            "/imports", data=fields, files={"file": (path.name, reading, "text/csv")}
        )
    body: dict[str, Any] = response.json()
    if response.status_code != 202:
        error = body.get("error", {})
        raise SystemExit(_refused(response.status_code, error))
    return body


def _refused(status: int, error: dict[str, Any]) -> int:
    where = f" (line {error['line']})" if error.get("line") else ""
    console.print(f"[red]refused ({status}): {error.get('message', 'unknown error')}{where}")
    return 2


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its name, its JSON data and its id."""

    kind: str
    data: dict[str, Any]
    id: str | None


def read_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a text/event-stream body (comments and pings skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            if name:
                fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            yield Event(
                fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
            )
        fields = {}


def events(http: httpx.Client, url: str) -> Iterator[Event]:
    with http.stream("GET", url, timeout=None) as response:
        yield from read_events(response.iter_lines())


def follow(http: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    last: dict[str, Any] = {"status": job["status"]}
    columns = (
        TextColumn("import"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[rows]} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("import", total=job["bytes_total"], rows="0", rate="")
        for event in events(http, job["events_url"]):
            state = event.data
            rate = state.get("rows_per_second")
            progress.update(
                task,
                completed=state["bytes_done"],
                rows=f"{state['rows_loaded']:,}",
                rate=f"{rate:,.0f} rows/s" if rate else "",
            )
            last = state
            if event.kind in AT_REST:
                break
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--target", required=True)
    parser.add_argument("--mode", choices=["append", "upsert"], default="append")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other upload field, e.g. --option max_errors=10",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CSV_IMPORT_API_KEY"),
        help=f"default: $CSV_IMPORT_API_KEY, else the content of {KEY_FILE}",
    )
    args = parser.parse_args(argv)
    fields = {
        "target": args.target,
        "mode": args.mode,
        **dict(option.split("=", 1) for option in args.option),
    }
    key = args.api_key or (KEY_FILE.read_text().strip() if KEY_FILE.exists() else None)
    if not key:
        console.print(
            f"[red]no API key: pass --api-key, set CSV_IMPORT_API_KEY, or run "
            f"`make setup` to have one written to {KEY_FILE}"
        )
        return 2
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=60) as http:
            job = upload(http, args.file, fields)
            final = follow(http, job)
    except httpx.TransportError as error:
        console.print(f"[red]cannot reach {args.url}: {error}")
        return 2
    print(
        f"{final['status']}: {final.get('rows_loaded', 0):,} rows loaded, "
        f"{final.get('rows_refused', 0):,} refused"
    )
    if final.get("error"):
        print(f"error: {final['error']}")
    if final.get("rows_refused"):
        print(f"refused rows: {job['errors_url']}?format=csv")
    return 0 if final["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
