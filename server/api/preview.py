"""POST /imports/preview: what an upload would do, read from the head of its file alone.

The body streams through as an upload's does (multipart, unpacked if compressed, within the
same limits), but only the file's first bytes are kept, in memory, and the rest is read and
dropped: nothing is stored and no job is made. The answer says what was detected, how each
header maps to a column, which columns nothing fills, the first rows as the values
PostgreSQL would be given (each cell's problem judged as the load would judge it), and what
an upload with the same fields would be refused for.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Query, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from server.api import upload
from server.api.accept import formats_of, load_tenant_target, read_header, warnings_of
from server.api.auth import TenantDep
from server.api.deps import Services, ServicesDep
from server.api.errors import ApiError
from server.api.options import UPLOAD_FORM, ImportOptions, parse_options
from server.api.schemas import (
    MatchView,
    PreviewRowView,
    PreviewView,
    ProblemView,
    WarningView,
    errors,
)
from server.api.unpack import UnpackLimits
from server.api.views import column_view, target_view
from server.csvfile.convert import Pending, Problem, RowConverter
from server.csvfile.formats import AmbiguousFormat, Formats
from server.csvfile.head import HEADER_LIMIT, Head
from server.csvfile.header import (
    ColumnMap,
    HeaderProblem,
    check_key,
    describe_matches,
    match_header,
)
from server.db import COPY_NULL, raw_cursor
from server.keys.keys import Tenant
from server.loading import judge
from server.targets import Column, Target, UnknownTarget

router = APIRouter(prefix="/imports", tags=["imports"])
PREVIEW_ROWS = 20
_TERMINATORS = {"\n": "LF", "\r\n": "CRLF", "\r": "CR"}
_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


class _Head(io.RawIOBase):
    """A sink that keeps the first `limit` bytes written to it and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.size = limit, bytearray(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += bytes(data[:room])
        self.size += len(data)
        return len(data)


class HeadStorage:
    """Storage for one preview: the head of its file, in memory; nothing reaches a disk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.files: dict[str, _Head] = {}

    def create(self, key: str) -> BinaryIO:
        self.files[key] = _Head(self.limit)
        return self.files[key]  # type: ignore[return-value]

    def commit(self, key: str) -> None:
        pass

    def discard(self, key: str) -> None:
        self.files.pop(key, None)

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(bytes(self.files[key].kept))

    def delete(self, key: str) -> None:
        self.discard(key)

    def remove_stale_parts(self, older_than_seconds: float) -> int:  # noqa: ARG002
        return 0  # nothing is ever half-written to a disk here


@router.post(
    "/preview",
    summary="What an upload would do, from the head of its file; nothing is stored",
    openapi_extra={"requestBody": UPLOAD_FORM},
    responses=errors(400, 401, 408, 413, 415, 422),
)
async def preview_import(
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    rows: Annotated[int, Query(ge=1, le=200)] = PREVIEW_ROWS,
) -> PreviewView:
    settings = services.settings
    storage = HeadStorage(HEADER_LIMIT + 1)
    received = await upload.receive(
        request,
        storage,
        f"{uuid.uuid4()}.csv",
        settings.max_upload_bytes,
        idle_seconds=settings.upload_idle_seconds,
        limits=UnpackLimits(settings.max_uncompressed_bytes, settings.max_compression_ratio),
    )
    options = parse_options(received.fields)
    if received.spreadsheet:
        raise ApiError(
            422,
            "preview_unsupported",
            "a workbook cannot be previewed: its sheets are read from the whole file",
        )
    found = await run_in_threadpool(_preview, services, tenant, storage, received, options, rows)
    storage.discard(received.key)
    return found


@dataclass
class _Reading:
    """What the head says, before any row is read."""

    target: Target
    column_map: ColumnMap
    keys: list[str]
    formats: Formats
    problem: ProblemView | None


def _preview(
    services: Services,
    tenant: Tenant,
    storage: HeadStorage,
    received: upload.Upload,
    options: ImportOptions,
    rows: int,
) -> PreviewView:
    layout, head = read_header(storage, received.key, options)
    with services.engine.connect() as connection:
        reading = _read(connection, services, tenant, head, received, options)
        converter = RowConverter(
            [_column(reading.target, name) for name in reading.column_map.columns],
            options.null_markers,
            positions=False,
            keys=reading.keys,
            formats=reading.formats,
        )
        sample = _rows(connection, converter, head.rows[:rows])
    used = set(reading.column_map.used)
    return PreviewView(
        file_name=received.filename,
        bytes_total=received.size,
        bytes_read=len(storage.files[received.key].kept),
        compression=received.compression,
        encoding=layout.encoding,
        encoding_confidence=layout.encoding_confidence,
        delimiter=layout.delimiter,
        line_terminator=_TERMINATORS.get(layout.terminator, layout.terminator),
        decimal=reading.formats.decimal,
        date_format=reading.formats.date_format,
        header=head.header,
        target=target_view(reading.target),
        mapping=[
            MatchView(header=m.header, column=m.column, matched_by=m.by)
            for m in describe_matches(head.header, reading.target, options.mapping)
        ],
        unfilled=[column_view(c) for c in reading.target.columns if c.name not in used],
        rows=sample,
        problem=reading.problem,
        warnings=[WarningView(code=w.code, message=w.message) for w in warnings_of(layout)],
    )


def _read(
    connection: Connection,
    services: Services,
    tenant: Tenant,
    head: Head,
    received: upload.Upload,
    options: ImportOptions,
) -> _Reading:
    """The target, the header's columns, the key and the formats. What an upload would be
    refused for is kept as the preview's `problem`, not raised: it is what to fix."""
    try:
        target = load_tenant_target(connection, tenant, options.target, services.settings)
    except UnknownTarget as error:
        raise ApiError(422, "unknown_target", str(error), target=options.target) from None
    problem = None
    keys: list[str] = []
    try:
        column_map = match_header(head.header, target, options.mapping)
        if options.mode == "upsert":
            keys = check_key(column_map, target, options.key)
    except HeaderProblem as found:
        problem = ProblemView(column=None, code=found.code, message=str(found))
        matched = [m.column for m in describe_matches(head.header, target, options.mapping)]
        column_map = ColumnMap(
            _once(matched), [h for h, c in zip(head.header, matched, strict=True) if c is None]
        )
    try:
        formats = formats_of(head, target, column_map, options, received)
    except AmbiguousFormat as ambiguous:
        problem = problem or ProblemView(
            column=None, code="ambiguous_format", message=str(ambiguous)
        )
        formats = options.formats
    return _Reading(target, column_map, keys, formats, problem)


def _once(columns: list[str | None]) -> list[str | None]:
    """Each column filled by its first header only (a second one is shown, not used)."""
    seen: set[str] = set()
    kept: list[str | None] = []
    for column in columns:
        kept.append(None if column is None or column in seen else column)
        if column is not None:
            seen.add(column)
    return kept


def _column(target: Target, name: str | None) -> Column | None:
    return None if name is None else target.column(name)


def _rows(
    connection: Connection, converter: RowConverter, sample: list[tuple[int, list[str]]]
) -> list[PreviewRowView]:
    """Each row as its values would be given to PostgreSQL, or its problems, judged as the
    load judges them (PostgreSQL reads what the converters cannot decide)."""
    results = [converter.copy_line(fields, line, 0) for line, fields in sample]
    pending = [result for result in results if isinstance(result, Pending)]
    settled = iter(judge.settle(raw_cursor(connection), converter, pending) if pending else [])
    views = []
    for (line, fields), result in zip(sample, results, strict=True):
        outcome = next(settled) if isinstance(result, Pending) else result
        views.append(_row_view(converter, line, fields, outcome))
    return views


def _row_view(
    converter: RowConverter, line: int, fields: list[str], outcome: str | list[Problem]
) -> PreviewRowView:
    names = [column.name for _, column, _ in converter.plan]
    if isinstance(outcome, str):
        line_text = outcome.rstrip("\n")
        values = [_unescape(text) for text in line_text.split("\t")] if names else []
        return PreviewRowView(line=line, values=dict(zip(names, values, strict=True)), problems=[])
    raw: dict[str, str | None] = {}
    if len(fields) == converter.width:
        raw = {
            column.name: None if fields[index] in converter.nulls else fields[index]
            for index, column, _ in converter.plan
        }
    problems = [ProblemView(column=p.column, code=p.code, message=p.message) for p in outcome]
    return PreviewRowView(line=line, values=raw, problems=problems)


def _unescape(text: str) -> str | None:
    """A value in COPY's text format, as PostgreSQL reads it."""
    if text == COPY_NULL:
        return None
    if "\\" not in text:
        return text
    out, chars = [], iter(text)
    for char in chars:
        out.append(_UNESCAPE.get(next(chars, ""), "") if char == "\\" else char)
    return "".join(out)
