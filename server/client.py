"""Upload a CSV file and follow its import in the terminal.

    csv-import data.csv --target customers [--mode upsert] [--mapping full_name=name]
    csv-import data.csv --target customers --dry-run      validate only, then...
    csv-import --commit JOB_ID                            ...publish what it validated
    python scripts/import_csv.py data.csv --target customers      (the same, from a checkout)

Before it uploads, it shows how the file's header maps to the table (the API's preview, from
the head of the file) and stops there if the upload would be refused.

The API key comes from --api-key, else from $CSV_IMPORT_API_KEY, else from var/api-key
(where `make run` puts the first key of a fresh install).

Exit codes: 0 completed (or validated, for a dry run), 1 failed or cancelled, 2 the upload
was refused (a missing or wrong key too) or the server is unreachable.
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
from rich.table import Table

from server.jobs.status import AT_REST

console = Console(stderr=True)
KEY_FILE = Path("var/api-key")
# The preview reads the head of a file: this much of a plain text file is sent for it.
PREVIEW_BYTES = 1 << 20
# Compressed files and workbooks are previewed by nobody but the upload itself.
_PACKED = (
    b"\x1f\x8b",
    b"PK\x03\x04",
    b"BZh",
    b"\xfd7zXZ",
    b"\x28\xb5\x2f\xfd",
    b"\xd0\xcf\x11\xe0",
)


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


def preview(http: httpx.Client, path: Path, fields: dict[str, str]) -> dict[str, Any] | None:
    """The API's preview of the file's head (lines cut whole), or None for a file that is
    compressed or a workbook."""
    with path.open("rb") as file:
        head = file.read(PREVIEW_BYTES)
        whole = not file.read(1)
    if head.startswith(_PACKED):
        return None
    if not whole and b"\n" in head:
        head = head[: head.rindex(b"\n") + 1]
    response = http.post(
        "/imports/preview", data=fields, files={"file": (path.name, head, "text/csv")}
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200:
        raise SystemExit(_refused(response.status_code, body.get("error", {})))
    return body


def show_mapping(found: dict[str, Any]) -> None:
    view = Table("header", "column", "matched by", title=f"into {found['target']['name']}")
    for match in found["mapping"]:
        column = match["column"] or "[yellow](ignored)"
        view.add_row(match["header"], column, match["matched_by"] or "")
    console.print(view)
    for column in found["unfilled"]:
        kind = "[red]required, nothing fills it" if column["required"] else "left empty"
        console.print(f"column {column['name']} ({column['type']}): {kind}")
    bad = sum(1 for row in found["rows"] if row["problems"])
    if bad:
        console.print(f"[yellow]{bad} of the first {len(found['rows'])} rows would be refused")


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


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    found.add_argument("file", type=Path, nargs="?")
    found.add_argument("--target")
    found.add_argument("--mode", choices=["append", "upsert"], default="append")
    found.add_argument(
        "--mapping",
        action="append",
        default=[],
        metavar="HEADER=COLUMN",
        help="a header that does not match its column by name",
    )
    found.add_argument("--dry-run", action="store_true", help="validate only: nothing lands")
    found.add_argument("--commit", metavar="JOB_ID", help="publish a dry run's validated rows")
    found.add_argument("--no-preview", action="store_true", help="upload without the preview")
    found.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other upload field, e.g. --option max_errors=10",
    )
    found.add_argument("--url", default="http://127.0.0.1:8000")
    found.add_argument(
        "--api-key",
        default=os.environ.get("CSV_IMPORT_API_KEY"),
        help=f"default: $CSV_IMPORT_API_KEY, else the content of {KEY_FILE}",
    )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.commit is None and (args.file is None or args.target is None):
        parser().error("give a FILE and --target (or --commit JOB_ID)")
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
            job = commit(http, args.commit) if args.commit else start(http, args)
            final = follow(http, job)
    except httpx.TransportError as error:
        console.print(f"[red]cannot reach {args.url}: {error}")
        return 2
    return report(job, final)


def start(http: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    fields = {
        "target": args.target,
        "mode": args.mode,
        **dict(option.split("=", 1) for option in args.option),
    }
    if args.mapping:
        fields["mapping"] = json.dumps(dict(pair.split("=", 1) for pair in args.mapping))
    if args.dry_run:
        fields["dry_run"] = "true"
    if not args.no_preview and (found := preview(http, args.file, fields)) is not None:
        show_mapping(found)
        if found["problem"]:
            return _stop(found["problem"])
    return upload(http, args.file, fields)


def _stop(problem: dict[str, Any]) -> dict[str, Any]:
    console.print(f"[red]the upload would be refused: {problem['message']}")
    raise SystemExit(2)


def commit(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.post(f"/imports/{job_id}/commit")
    body: dict[str, Any] = response.json()
    if response.status_code != 202:
        raise SystemExit(_refused(response.status_code, body.get("error", {})))
    return body


def report(job: dict[str, Any], final: dict[str, Any]) -> int:
    status = final["status"]
    loaded = "to publish" if status == "validated" else "loaded"
    print(
        f"{status}: {final.get('rows_loaded', 0):,} rows {loaded}, "
        f"{final.get('rows_refused', 0):,} refused"
    )
    if final.get("error"):
        print(f"error: {final['error']}")
    if final.get("rows_refused"):
        print(f"refused rows: {job['errors_url']}?format=csv")
    if status == "validated":
        print(f"to publish them: csv-import --commit {job['id']}")
    return 0 if status in ("completed", "validated") else 1


if __name__ == "__main__":
    sys.exit(main())
