"""Accept an uploaded file as a job: read its header, check it against the target, commit.

Runs in a thread (it reads the file and talks to PostgreSQL synchronously).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from server.api.errors import ApiError
from server.api.options import ImportOptions
from server.api.upload import Upload
from server.crash import crash_point
from server.csvfile.detect import (
    HEAD_BYTES,
    EmptyFile,
    Layout,
    NotText,
    UnknownDelimiter,
    detect_layout,
)
from server.csvfile.encoding import CONFIDENT
from server.csvfile.formats import AmbiguousFormat, Formats, detect_formats, undecided
from server.csvfile.head import HEADER_LIMIT, Head, HeadProblem, read_head
from server.csvfile.header import ColumnMap, HeaderProblem, check_key, match_header
from server.jobs import repository
from server.jobs.model import Job, JobOptions, JobWarning
from server.keys.keys import Tenant
from server.outbound import RefusedUrl, check_literal
from server.settings import Settings
from server.storage import Storage
from server.targets import Target, UnknownTarget, load_target
from server.webhooks import endpoints


class DuplicateKey(Exception):
    """Another upload with the same Idempotency-Key won the race."""


def accept(
    engine: Engine,
    storage: Storage,
    settings: Settings,
    tenant: Tenant,
    upload: Upload,
    options: ImportOptions,
    idempotency_key: str | None,
) -> Job:
    layout, head = read_header(storage, upload.key, options)
    job_id = uuid.UUID(upload.key.removesuffix(".csv"))
    try:
        with engine.begin() as connection:
            target = load_tenant_target(connection, tenant, options.target, settings)
            column_map = match_header(head.header, target, options.mapping)
            keys = check_key(column_map, target, options.key) if options.mode == "upsert" else []
            formats = formats_of(head, target, column_map, options, upload)
            callback = callback_url(connection, tenant, options, settings)
            job = repository.insert_job(
                connection,
                _job_values(
                    job_id,
                    tenant,
                    upload,
                    options,
                    formats,
                    target.name,
                    layout,
                    head,
                    column_map,
                    keys,
                    idempotency_key,
                )
                | {"callback_url": callback},
            )
    except UnknownTarget as error:
        raise ApiError(422, "unknown_target", str(error), target=options.target) from None
    except HeaderProblem as problem:
        raise ApiError(422, problem.code, str(problem), line=1, columns=problem.columns) from None
    except AmbiguousFormat as ambiguous:
        raise ApiError(
            422,
            "ambiguous_format",
            str(ambiguous),
            line=ambiguous.line,
            field=ambiguous.field,
            value=ambiguous.value,
            readings=ambiguous.readings,
        ) from None
    except IntegrityError as error:
        if idempotency_key and "idempotency_key" in str(error.orig):
            raise DuplicateKey from None
        raise
    crash_point(settings, "after_commit")
    return job


def load_tenant_target(
    connection: Connection, tenant: Tenant, name: str, settings: Settings
) -> Target:
    """A target the operator allows and the tenant may use; the same refusal for both, so
    that a tenant learns nothing of the tables kept from it."""
    if not tenant.allows(name):
        raise UnknownTarget(f"{name!r} is not a table that imports are allowed into")
    return load_target(connection, name, settings.import_targets)


def callback_url(
    connection: Connection, tenant: Tenant, options: ImportOptions, settings: Settings
) -> str | None:
    """The upload's callback URL, or its tenant's default; one that can be signed for."""
    found = endpoints.endpoint(connection, tenant.name)
    url = options.callback_url or (found.default_url if found else None)
    if url is None:
        return None
    if found is None:
        raise ApiError(
            422,
            "webhook_secret_missing",
            f"tenant {tenant.name!r} has no webhook signing secret yet: an operator makes "
            f"one with `csv-import-keys webhook --tenant {tenant.name}`",
            field="callback_url",
        )
    try:
        check_literal(url, settings.outbound_allow_networks)
    except RefusedUrl as error:
        raise ApiError(422, "callback_refused", str(error), field="callback_url") from None
    return url


def formats_of(
    head: Head, target: Target, column_map: ColumnMap, options: ImportOptions, upload: Upload
) -> Formats:
    """The number and date formats: the upload's, or what the first rows decide. A sheet's
    cells were written as PostgreSQL reads them."""
    if upload.spreadsheet:
        return Formats()
    columns = [None if name is None else target.column(name) for name in column_map.columns]
    given = options.formats
    if not undecided(columns, given):
        return given
    return detect_formats(head.rows, columns, options.null_markers, given)


def read_header(storage: Storage, key: str, options: ImportOptions) -> tuple[Layout, Head]:
    """The layout, the header, where the data starts and the first rows, from the first
    bytes of the file only."""
    with storage.open(key) as file:
        head = file.read(HEADER_LIMIT)
        whole_file = not file.read(1)
    try:
        layout = detect_layout(head[:HEAD_BYTES], options.encoding, options.delimiter)
        found = read_head(head, layout, whole_file)
    except EmptyFile as error:
        raise ApiError(422, "empty_file", str(error)) from None
    except NotText as error:
        raise ApiError(415, "not_text", str(error)) from None
    except UnknownDelimiter as error:
        raise ApiError(422, "unknown_delimiter", str(error), line=1) from None
    except HeadProblem as problem:
        raise ApiError(422, problem.code, str(problem), line=problem.line) from None
    return layout, found


def warnings_of(layout: Layout) -> list[JobWarning]:
    """What the user should check: an encoding the detector was not sure of."""
    confidence = layout.encoding_confidence
    if confidence is None or confidence >= CONFIDENT:
        return []
    return [
        JobWarning(
            "uncertain_encoding",
            f"the file's encoding was guessed as {layout.encoding} with a confidence of "
            f"{confidence:.2f}; if its text looks garbled, upload it again with the "
            "`encoding` field",
        )
    ]


def _job_options(upload: Upload, options: ImportOptions, formats: Formats) -> JobOptions:
    sheet = upload.sheet
    return replace(
        options.job_options(formats),
        compression=upload.compression,
        sheet=sheet.sheet if sheet else None,
        sheet_shifts=tuple(sheet.shifts) if sheet else (),
    )


def _job_values(
    job_id: uuid.UUID,
    tenant: Tenant,
    upload: Upload,
    options: ImportOptions,
    formats: Formats,
    target: str,
    layout: Layout,
    head: Head,
    column_map: ColumnMap,
    keys: list[str],
    idempotency_key: str | None,
) -> dict[str, Any]:
    return {
        "id": job_id,
        "tenant": tenant.name,
        "target": target,
        "mode": options.mode,
        "key_columns": keys,
        "file_key": upload.key,
        # The name is only shown back; PostgreSQL text cannot hold NUL.
        "file_name": upload.filename[:255].replace("\x00", "\ufffd"),
        "bytes_total": upload.size,
        "sha256": upload.sha256,
        "encoding": layout.encoding,
        "encoding_confidence": layout.encoding_confidence,
        "warnings": [asdict(warning) for warning in warnings_of(layout)],
        "delimiter": layout.delimiter,
        "line_terminator": layout.terminator,
        "header": head.header,
        "column_map": column_map.columns,
        "extra_columns": column_map.extra,
        "options": _job_options(upload, options, formats).to_json(),
        "idempotency_key": idempotency_key,
        "checkpoint_offset": head.data_offset,
        "checkpoint_line": head.data_line,
    }
