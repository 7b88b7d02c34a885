"""How jobs and refused rows look from outside."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence

from server.api.schemas import (
    ColumnView,
    DeliveryView,
    JobView,
    ProblemView,
    RefusedRowView,
    TargetView,
    WarningView,
)
from server.jobs.model import Job, RefusedRow
from server.targets import Column, Target
from server.webhooks.deliveries import Delivery

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def job_view(job: Job, url: str, events_token: str, deliveries: Sequence[Delivery] = ()) -> JobView:
    """The job, and the URLs to follow it; its event stream's URL opens with no key."""
    return JobView(
        id=job.id,
        status=job.status,
        target=job.target,
        mode=job.mode,
        file_name=job.file_name,
        bytes_total=job.bytes_total,
        bytes_done=job.bytes_done,
        rows_loaded=job.rows_loaded,
        rows_refused=job.rows_refused,
        rows_published=job.rows_published,
        rows_superseded=job.rows_superseded,
        rows_careful=job.rows_careful,
        sha256=job.sha256,
        encoding=job.encoding,
        encoding_confidence=job.encoding_confidence,
        delimiter=job.delimiter,
        decimal=job.options.decimal,
        date_format=job.options.date_format,
        compression=job.options.compression,
        sheet=job.options.sheet,
        header=list(job.header),
        extra_columns=list(job.extra_columns),
        error=job.error,
        warnings=[WarningView(code=w.code, message=w.message) for w in job.warnings],
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        url=url,
        events_url=f"{url}/events?token={events_token}",
        errors_url=f"{url}/errors",
        callback_url=job.callback_url,
        deliveries=[delivery_view(delivery) for delivery in deliveries],
    )


def delivery_view(delivery: Delivery) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        event=delivery.event,
        url=delivery.url,
        status=delivery.status,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        last_attempt_at=delivery.last_attempt_at,
        delivered_at=delivery.delivered_at,
    )


def target_view(target: Target) -> TargetView:
    return TargetView(
        name=target.name,
        primary_key=list(target.primary_key),
        unique_keys={name: list(columns) for name, columns in target.unique_keys.items()},
        columns=[column_view(column) for column in target.columns],
    )


def column_view(column: Column) -> ColumnView:
    return ColumnView(
        name=column.name, type=column.type, required=column.required, nullable=column.nullable
    )


def refused_view(job: Job, row: RefusedRow) -> RefusedRowView:
    return RefusedRowView(
        line=job.options.line_in_upload(row.line),
        column=row.column,
        code=row.code,
        message=row.message,
        raw=row.raw,
        errors=[ProblemView.model_validate(problem) for problem in row.errors],
    )


def neutralise(cell: str) -> str:
    """A spreadsheet must never run a cell as a formula; plain numbers stay numbers."""
    if cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def refused_csv(job: Job, rows: Iterable[RefusedRow]) -> Iterator[str]:
    """The file's own header, each refused line as it was, and a last column saying why."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=job.delimiter, lineterminator="\r\n")
    writer.writerow([*(neutralise(name) for name in job.header), "error"])
    yield "\ufeff" + _take(out)
    for row in rows:
        fields = next(csv.reader(io.StringIO(row.raw, newline=""), delimiter=job.delimiter), [])
        where = "row" if job.options.sheet else "line"
        reason = f"{where} {job.options.line_in_upload(row.line)}: {row.message}"
        safe = [neutralise(cell) for cell in fields]
        if safe == fields and row.raw:
            # Nothing to neutralise: the line goes out exactly as it was in the file.
            writer.writerow([reason])
            yield row.raw + job.delimiter + _take(out)
        else:
            writer.writerow([*safe, reason])
            yield _take(out)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
