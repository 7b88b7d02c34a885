"""Jobs and refused rows as the rest of the service sees them: typed and frozen.

The repository makes them from rows; nothing outside `server/jobs/` handles a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from server.csvfile.formats import Formats
from server.jobs.status import JobStatus

Mode = Literal["append", "upsert"]


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What the upload asked for beyond the target, kept on the job for its workers."""

    null_markers: tuple[str, ...] = ("",)
    mapping: Mapping[str, str] = field(default_factory=dict)
    max_errors: int | None = None
    max_error_rate: float | None = None
    decimal: str | None = None
    date_format: str | None = None
    compression: str | None = None  # what the upload was unpacked from
    sheet: str | None = None  # the workbook's sheet the file was read from
    # (line, row): where the sheet's row numbers stop being the CSV's line numbers.
    sheet_shifts: tuple[tuple[int, int], ...] = ()
    dry_run: bool = False  # stop staged and checked (validated) until a commit
    committed: bool = False  # a dry run's commit came: publish the rows this time

    @property
    def formats(self) -> Formats:
        return Formats(self.decimal, self.date_format)

    @property
    def validates_only(self) -> bool:
        """A dry run not committed yet: stage and check, publish nothing."""
        return self.dry_run and not self.committed

    def line_in_upload(self, line: int) -> int:
        """A line of the stored CSV as the user knows it: a sheet's row number, or itself."""
        for start, row in reversed(self.sheet_shifts):
            if line >= start:
                return row + line - start
        return line

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> JobOptions:
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in stored.items() if name in known}
        if "null_markers" in values:
            values["null_markers"] = tuple(values["null_markers"])
        if "sheet_shifts" in values:
            values["sheet_shifts"] = tuple(tuple(pair) for pair in values["sheet_shifts"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {
            "null_markers": list(self.null_markers),
            "mapping": dict(self.mapping),
            "max_errors": self.max_errors,
            "max_error_rate": self.max_error_rate,
            "decimal": self.decimal,
            "date_format": self.date_format,
            "compression": self.compression,
            "sheet": self.sheet,
            "sheet_shifts": [list(pair) for pair in self.sheet_shifts],
            "dry_run": self.dry_run,
            "committed": self.committed,
        }


@dataclass(frozen=True, slots=True)
class JobWarning:
    """Something about the job that may not be what its user meant; it runs all the same."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Job:
    id: uuid.UUID
    tenant: str
    target: str
    mode: Mode
    key_columns: tuple[str, ...]
    status: JobStatus
    file_key: str
    file_name: str
    bytes_total: int
    sha256: str
    encoding: str
    encoding_confidence: float | None  # the detector's, when the encoding was a guess
    delimiter: str
    line_terminator: str
    header: tuple[str, ...]
    column_map: tuple[str | None, ...]  # per field of the file: the column it fills, or None
    extra_columns: tuple[str, ...]
    options: JobOptions
    idempotency_key: str | None
    callback_url: str | None  # where the job's end is announced (a webhook)
    checkpoint_offset: int  # where the next record starts: a byte offset and a line number
    checkpoint_line: int
    rows_loaded: int
    rows_refused: int
    rows_published: int | None
    rows_superseded: int  # upsert: lines whose key a later line of the file gave again
    rows_careful: int  # records read the careful way, one by one, not as part of a run
    segments: int
    retries: int
    cancel_requested: bool
    error: str | None
    warnings: tuple[JobWarning, ...]
    created_at: datetime
    published_at: datetime | None
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    cleaned_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Job:
        values = dict(row)
        values["status"] = JobStatus(values["status"])
        values["options"] = JobOptions.from_json(values["options"])
        for name in ("key_columns", "header", "column_map", "extra_columns"):
            values[name] = tuple(values[name])
        values["warnings"] = tuple(JobWarning(**warning) for warning in values["warnings"])
        return cls(**values)

    @property
    def bytes_done(self) -> int:
        return min(self.checkpoint_offset, self.bytes_total)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a job stands after a committed batch."""

    offset: int
    line: int
    rows_loaded: int
    rows_refused: int
    cancel_requested: bool

    @classmethod
    def of(cls, job: Job) -> Checkpoint:
        return cls(
            job.checkpoint_offset,
            job.checkpoint_line,
            job.rows_loaded,
            job.rows_refused,
            job.cancel_requested,
        )


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A line of the file that did not land, why, and its text as it was."""

    line: int
    column: str | None
    code: str
    message: str
    raw: str
    # Every problem of the row; stored only when there is more than the first one.
    errors: tuple[Mapping[str, str | None], ...]

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RefusedRow:
        first = {"column": row["column"], "code": row["code"], "message": row["message"]}
        return cls(
            row["line"],
            row["column"],
            row["code"],
            row["message"],
            row["raw"],
            tuple(row["errors"]) or (first,),
        )


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """One task's stretch of a job, as the segment log keeps it."""

    id: int
    job_id: uuid.UUID
    worker: str
    start_line: int
    start_offset: int
    end_line: int | None
    end_offset: int | None
    outcome: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> SegmentRecord:
        return cls(**dict(row))
