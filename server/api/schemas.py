"""What the API answers, typed: the OpenAPI document and the responses come from these.

Every error has one shape, `{"error": {"code", "message", ...}}`; `errors(...)` documents
the ones a route can answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.jobs.status import JobStatus


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="what went wrong, for programs: `unknown_target`, ...")
    message: str = Field(description="what went wrong, for people")
    line: int | None = Field(default=None, description="the line of the file it concerns")
    columns: list[str] | None = Field(default=None, description="the columns it concerns")


class ErrorBody(BaseModel):
    error: ErrorDetail


_WHY = {
    400: "The multipart body is malformed or incomplete",
    401: "No API key, or one that is unknown or revoked",
    403: "The key is not an operator's",
    404: "No such import (or another tenant's: the same answer)",
    408: "The upload stalled: nothing arrived for `UPLOAD_IDLE_SECONDS`",
    409: "The import is not in a status that allows this (the body says which it is)",
    413: "The file (or a form field) is larger than the limit",
    415: "Not multipart/form-data, or a file that is not text",
    422: "A field, parameter or the file's header is not acceptable",
    429: "Over the tenant's share (uploads a minute, bytes held): `Retry-After` says when to",
    503: "A service the API needs is down",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that can answer these error statuses."""
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}


def json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The same, for a route whose own answer is not JSON (its errors still are)."""
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {status: {"description": _WHY[status], "content": body} for status in statuses}


class WarningView(BaseModel):
    code: str
    message: str


class DeliveryView(BaseModel):
    id: uuid.UUID = Field(description="the webhook's `webhook-id`, the same on every attempt")
    event: str = Field(description="`import.completed`, `import.failed` or `import.cancelled`")
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None = Field(description="the receiver's last answer, if any")
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None


class JobView(BaseModel):
    id: uuid.UUID
    status: JobStatus
    target: str = Field(description="`schema.table`")
    mode: Literal["append", "upsert"]
    file_name: str = Field(description="the uploaded file's name, only a label")
    bytes_total: int
    bytes_done: int
    rows_loaded: int
    rows_refused: int
    rows_published: int | None = Field(description="rows written to the target, once completed")
    rows_superseded: int = Field(
        description="upsert: lines whose key a later line of the file gave again"
    )
    rows_careful: int = Field(
        description="records read one by one (the careful way), not as part of a run of "
        "plain lines: a measure of how much of the file the fast path could take"
    )
    sha256: str
    encoding: str = Field(description="Python's name of the file's encoding")
    encoding_confidence: float | None = Field(
        description="how sure the detector was of the encoding, from 0 to 1; null when it "
        "was not a guess (a byte-order mark, UTF-8, or the `encoding` field)"
    )
    delimiter: str
    decimal: str | None = Field(
        description="the decimal mark numbers were read with (its thousands separator too); "
        "null when numbers are read as PostgreSQL reads them"
    )
    date_format: str | None = Field(
        description="how the file writes dates (`DD.MM.YYYY`, …); null for ISO dates"
    )
    compression: str | None = Field(
        description="what the upload was unpacked from (`gzip`, `bzip2`, `xz`, `zstd`, `zip`)"
    )
    sheet: str | None = Field(description="the workbook's sheet that was read, for a workbook")
    header: list[str]
    extra_columns: list[str] = Field(description="headers that fill no column, ignored")
    error: str | None
    warnings: list[WarningView] = Field(
        description="what may not be what was meant (an encoding guessed with little "
        "confidence); the job runs all the same"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str
    events_url: str = Field(
        description="live progress (Server-Sent Events); opens without "
        "a key for `EVENTS_TOKEN_SECONDS`"
    )
    errors_url: str = Field(description="the refused rows")
    callback_url: str | None = Field(description="where the job's end is posted (a webhook)")
    deliveries: list[DeliveryView] = Field(
        default=[], description="the webhook of each end of the job, and its attempts"
    )


class JobPage(BaseModel):
    items: list[JobView]
    next: str | None = Field(description="the next page, if there is one")


class ProblemView(BaseModel):
    column: str | None
    code: str
    message: str


class RefusedRowView(BaseModel):
    line: int = Field(
        description="the line of the file where the record starts (a workbook's row number)"
    )
    column: str | None = Field(description="the first column with a problem, if any")
    code: str
    message: str
    raw: str = Field(description="the record as it was in the file")
    errors: list[ProblemView]


class RefusedPage(BaseModel):
    items: list[RefusedRowView]
    next: str | None = Field(description="the next page, if there is one")


class ColumnView(BaseModel):
    name: str
    type: str = Field(description="PostgreSQL's name of the base type: int4, numeric, ...")
    required: bool = Field(description="not null and without a default: the file must fill it")
    nullable: bool


class TargetView(BaseModel):
    name: str
    primary_key: list[str]
    unique_keys: dict[str, list[str]]
    columns: list[ColumnView]


class TargetList(BaseModel):
    items: list[TargetView]


class Check(BaseModel):
    ok: bool
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Check]


class WorkerView(BaseModel):
    """A worker process, as it last said of itself, and the job it holds."""

    name: str = Field(description="host:pid")
    host: str
    pid: int
    state: Literal["busy", "idle", "gone"]
    started_at: datetime
    last_beat_at: datetime
    job_id: uuid.UUID | None = None
    tenant: str | None = None
    holding_since: datetime | None = None
    rows_done: int | None = Field(default=None, description="loaded and refused so far")
    rows_per_second: float | None = None


class WorkerList(BaseModel):
    items: list[WorkerView]


class ProgressEvent(BaseModel):
    """The data of each event of a job's stream (`event:` progress, completed, failed or
    cancelled; `id:` the Redis Stream id to resume from with Last-Event-ID)."""

    status: JobStatus
    rows_loaded: int
    rows_refused: int
    rows_superseded: int
    bytes_done: int
    bytes_total: int
    percent: float
    rows_per_second: float | None
    eta_seconds: float | None
    error: str | None


class MatchView(BaseModel):
    header: str
    column: str | None = Field(description="the column it fills; null: ignored")
    matched_by: Literal["mapping", "name", "normalised name"] | None


class PreviewRowView(BaseModel):
    line: int
    values: dict[str, str | None] = Field(
        description="column → the text PostgreSQL would be given (null: NULL); for a row "
        "with problems, the values as the file writes them"
    )
    problems: list[ProblemView] = Field(description="why the row would be refused, per cell")


class PreviewView(BaseModel):
    file_name: str
    bytes_total: int = Field(description="the file's size, unpacked if it came compressed")
    bytes_read: int = Field(description="how much of its head the preview read")
    compression: str | None
    encoding: str
    encoding_confidence: float | None
    delimiter: str
    line_terminator: Literal["LF", "CRLF", "CR"]
    decimal: str | None
    date_format: str | None
    header: list[str]
    target: TargetView
    mapping: list[MatchView] = Field(description="how each header maps to a column")
    unfilled: list[ColumnView] = Field(
        description="the table's columns that no header fills (`required` ones refuse the upload)"
    )
    rows: list[PreviewRowView]
    problem: ProblemView | None = Field(
        description="what an upload with the same fields would be refused for, if anything"
    )
    warnings: list[WarningView]
