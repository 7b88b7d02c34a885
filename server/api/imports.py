"""Routes of /imports: upload, list, inspect, refused rows, cancel, live progress."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Send

from server import logs, measures
from server.api import upload
from server.api.accept import DuplicateKey, accept
from server.api.auth import EventsJobDep, TenantDep, events_token
from server.api.deps import HubDep, LimitsDep, Services, ServicesDep
from server.api.errors import ApiError, job_not_found
from server.api.fetch import download
from server.api.options import UPLOAD_FORM, ImportOptions, parse_options
from server.api.schemas import (
    JobPage,
    JobView,
    ProgressEvent,
    RefusedPage,
    errors,
    json_errors,
)
from server.api.unpack import UnpackLimits
from server.api.views import job_view, refused_csv, refused_view
from server.api.workbook import read_sheet
from server.db import raw_cursor
from server.housekeeping import forget_progress
from server.jobs import repository
from server.jobs.model import Job
from server.jobs.status import AT_REST, JobStatus
from server.keys.keys import Tenant
from server.loading import staging
from server.loading.segment import interrupt
from server.messaging.publish import publish_job
from server.progress.events import Progress, event_fields
from server.progress.reader import follow
from server.progress.writer import ProgressWriter
from server.webhooks import deliveries
from server.webhooks.deliveries import Delivery
from server.webhooks.publish import publish_after_end

log = logging.getLogger(__name__)
router = APIRouter(prefix="/imports", tags=["imports"])

PING_SECONDS = 15
# Beyond any real file or listing, and within PostgreSQL's bigint.
LARGEST = 2**62
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class EventStream(EventSourceResponse):
    media_type = "text/event-stream"

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        # Without a send timeout, straight to the server: a cancel scope per message costs
        # more than the write itself when thousands of browsers follow one import.
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)


@router.post(
    "",
    status_code=202,
    summary="Upload a CSV file and start importing it",
    openapi_extra={"requestBody": UPLOAD_FORM},
    responses=errors(400, 401, 408, 413, 415, 422, 429),
)
async def create_import(
    request: Request,
    response: Response,
    services: ServicesDep,
    tenant: TenantDep,
    limits: LimitsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobView:
    idempotency_key = idempotency_key or None
    if idempotency_key and (first := await _by_key(services, tenant, idempotency_key)):
        return _accepted(first, request, response, services, replayed=True)
    await run_in_threadpool(limits.admit, tenant.name)
    key = f"{uuid.uuid4()}.csv"
    received = await upload.receive(
        request,
        services.storage,
        key,
        services.settings.max_upload_bytes,
        idle_seconds=services.settings.upload_idle_seconds,
        limits=UnpackLimits(
            services.settings.max_uncompressed_bytes, services.settings.max_compression_ratio
        ),
        file_required=False,
    )
    try:
        if not (received.has_file or received.fields.get("source_url")):
            raise ApiError(422, "missing_file", "the upload has no `file` part (nor a source_url)")
        options = parse_options(received.fields)
        received = await _file_of(received, options, services)
        if received.spreadsheet:
            await run_in_threadpool(read_sheet, services.storage, received, options.sheet)
            options = options.for_workbook()
        job = await run_in_threadpool(
            accept,
            services.engine,
            services.storage,
            services.settings,
            tenant,
            received,
            options,
            idempotency_key,
        )
    except DuplicateKey:
        services.storage.delete(key)
        first = await _by_key(services, tenant, idempotency_key or "")
        assert first is not None
        return _accepted(first, request, response, services, replayed=True)
    except BaseException:
        services.storage.delete(key)
        raise
    logs.bind(job_id=job.id)
    log.info("job %s: accepted, %s bytes for %s", job.id, job.bytes_total, job.target)
    measures.UPLOADS.inc()
    measures.UPLOAD_SIZE.observe(job.bytes_total)
    await run_in_threadpool(publish_now, services, job.id, job.bytes_total)
    return _accepted(job, request, response, services, replayed=False)


async def _file_of(
    received: upload.Upload, options: ImportOptions, services: Services
) -> upload.Upload:
    """The upload's file part, or the file its `source_url` names, downloaded."""
    if received.has_file and options.source_url:
        raise ApiError(
            422, "file_and_source", "send a file part or a source_url, not both", field="file"
        )
    if received.has_file:
        return received
    if not options.source_url:
        raise ApiError(422, "missing_file", "the upload has no `file` part (nor a source_url)")
    found = await run_in_threadpool(
        download, options.source_url, services.storage, received.key, services.settings
    )
    found.fields = received.fields
    return found


def publish_now(services: Services, job_id: uuid.UUID, size: int) -> None:
    """Publish after the commit. If the broker fails us now, the sweeper publishes later."""
    try:
        publish_job(services.celery, job_id, express=size <= services.settings.express_max_bytes)
    except Exception:
        log.exception("job %s: publish failed, the sweeper will publish it again", job_id)
        return
    with services.engine.begin() as connection:
        repository.mark_published(connection, job_id)


async def _by_key(services: Services, tenant: Tenant, key: str) -> Job | None:
    def find() -> Job | None:
        with services.engine.connect() as connection:
            return repository.job_by_idempotency_key(connection, tenant.name, key)

    return await run_in_threadpool(find)


def _view(
    job: Job, request: Request, services: Services, delivered: Sequence[Delivery] = ()
) -> JobView:
    url = str(request.url_for("get_import", job_id=str(job.id)))
    return job_view(job, url, events_token(services, job), delivered)


def _deliveries(services: Services, jobs: Sequence[Job]) -> dict[uuid.UUID, list[Delivery]]:
    """The webhooks of the jobs that have a callback URL."""
    with services.engine.connect() as connection:
        return deliveries.of_jobs(connection, [job.id for job in jobs if job.callback_url])


def _accepted(
    job: Job, request: Request, response: Response, services: Services, replayed: bool
) -> JobView:
    view = _view(job, request, services)
    response.headers["Location"] = view.url
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.get("", summary="Recent imports, newest first", responses=errors(401, 422))
def list_imports(
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=LARGEST)] = 0,
) -> JobPage:
    with services.engine.connect() as connection:
        jobs = repository.list_jobs(connection, tenant.name, limit + 1, offset)
    more, jobs = len(jobs) > limit, jobs[:limit]
    next_url = str(request.url.include_query_params(offset=offset + limit)) if more else None
    hooks = _deliveries(services, jobs)
    items = [_view(job, request, services, hooks.get(job.id, ())) for job in jobs]
    return JobPage(items=items, next=next_url)


@router.get(
    "/{job_id}",
    summary="One import: status, counts, checkpoints, error",
    responses=errors(401, 404, 422),
)
def get_import(
    job_id: uuid.UUID, request: Request, services: ServicesDep, tenant: TenantDep
) -> JobView:
    job = _job(services, tenant, job_id)
    return _view(job, request, services, _deliveries(services, [job]).get(job.id, ()))


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    summary="Cancel a queued, running or validated import",
    responses=errors(401, 404, 422),
)
def cancel_import(
    job_id: uuid.UUID, request: Request, services: ServicesDep, tenant: TenantDep
) -> JobView:
    before = _job(services, tenant, job_id)
    with services.engine.begin() as connection:
        job = repository.request_cancel(connection, job_id)
    assert job is not None
    if job.status is JobStatus.RUNNING:
        # Committed first: the worker, interrupted, must find the cancel when it looks.
        with services.engine.begin() as connection:
            interrupt(connection, job.id)
    if job.status is JobStatus.CANCELLED and before.status in _CANCELLED_HERE:
        # No worker will see a job cancelled while queued or validated: say so here.
        if before.status is JobStatus.VALIDATED:
            with services.engine.begin() as connection:
                staging.drop(raw_cursor(connection), job.id)
        _ended_here(services, job)
    return _view(job, request, services)


_CANCELLED_HERE = (JobStatus.QUEUED, JobStatus.VALIDATED)


def _ended_here(services: Services, job: Job) -> None:
    """What the process that ended a job tells: the final event, the counts, the webhook."""
    writer = ProgressWriter(services.settings.redis_url)
    writer.write(job.id, event_fields(Progress.of(job)))
    writer.close()
    measures.job_ended(job)
    if job.callback_url is not None:
        publish_after_end(services.celery, services.engine, job.id)


@router.post(
    "/{job_id}/commit",
    status_code=202,
    summary="Publish the rows a dry run validated",
    description="The job goes back to the queue and publishes exactly the rows its dry run "
    "staged, in one transaction; committing again (or from two clients at once) lands them "
    "once.",
    responses=errors(401, 404, 409, 422),
)
def commit_import(
    job_id: uuid.UUID, request: Request, services: ServicesDep, tenant: TenantDep
) -> JobView:
    _job(services, tenant, job_id)
    with services.engine.begin() as connection:
        committed = repository.commit_validated(connection, job_id)
        job = repository.get_job(connection, job_id)
    assert job is not None
    if committed:
        _queue_again(services, job)
    elif not job.options.dry_run:
        raise ApiError(409, "not_a_dry_run", "only a dry run's job can be committed")
    elif not job.options.committed:
        raise ApiError(
            409,
            "not_validated",
            f"the job is {job.status}: only a validated job can be committed",
            job_status=job.status.value,
        )
    return _view(job, request, services)


@router.post(
    "/{job_id}/retry",
    status_code=202,
    summary="Queue a failed import again, from its checkpoint",
    description="What the dead-letter tool's replay does, for one job of your own: it "
    "resumes where it stopped, so no row is loaded twice.",
    responses=errors(401, 404, 409, 422),
)
def retry_import(
    job_id: uuid.UUID, request: Request, services: ServicesDep, tenant: TenantDep
) -> JobView:
    before = _job(services, tenant, job_id)
    if before.status is not JobStatus.FAILED:
        raise ApiError(
            409,
            "not_failed",
            f"the job is {before.status}: only a failed job can be retried",
            job_status=before.status.value,
        )
    with services.engine.begin() as connection:
        repository.reset_for_replay(connection, job_id)
        job = repository.get_job(connection, job_id)
    assert job is not None
    _queue_again(services, job)
    return _view(job, request, services)


def _queue_again(services: Services, job: Job) -> None:
    """A job at rest, queued again: its old events go (their last one said it stopped),
    and its message is published."""
    forget_progress(services.settings.redis_url, [job.id])
    publish_now(services, job.id, job.bytes_total)


# Each event of the stream (OpenAPI before 3.2 has `schema` describe one event).
_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["progress", *sorted(AT_REST)]},
        "id": {"type": "string", "description": "resume after it with Last-Event-ID"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": f"#/components/schemas/{ProgressEvent.__name__}"},
        },
    },
}
_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A stream of Server-Sent Events: the current state first, "
        "then an event after each committed batch, each `data` a JSON "
        f"`{ProgressEvent.__name__}`; it ends after a `completed`, `failed` or "
        "`cancelled` event.",
        "content": {"text/event-stream": {"schema": _EVENT}},
    },
    204: {"description": "The `Last-Event-ID` is the job's final event: nothing more will come."},
    **json_errors(401, 404, 422),
}


@router.get(
    "/{job_id}/events",
    summary="Live progress as Server-Sent Events (with an API "
    "key, or with the token of the job's `events_url`)",
    response_class=EventStream,
    responses=_EVENTS,
)
async def import_events(
    job_id: uuid.UUID,
    hub: HubDep,
    job: EventsJobDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    if last_event_id is not None and await hub.ended_for(job_id, last_event_id):
        # A browser back after the final event: 204 stops its EventSource for good.
        return Response(status_code=204)
    # Proxies must not buffer the stream (and it is never gzipped).
    return EventStream(
        follow(hub, job, last_event_id),
        ping=PING_SECONDS,
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
    )


_REFUSED_CSV = {
    200: {
        "description": "JSON pages, or with `format=csv` (or `Accept: text/csv`) "
        "a CSV file: the file's header, each refused line as it was, and a last "
        "column saying why.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **errors(401, 404, 422),
}


@router.get(
    "/{job_id}/errors",
    summary="Refused rows: JSON pages, or CSV with Accept: text/csv (or ?format=csv, for links)",
    response_model=RefusedPage,
    responses=_REFUSED_CSV,
)
def list_refused(
    job_id: uuid.UUID,
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    after_line: Annotated[int, Query(ge=0, le=LARGEST)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[str | None, Query(pattern="^(csv|json)$")] = None,
) -> RefusedPage | StreamingResponse:
    job = _job(services, tenant, job_id)
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        return StreamingResponse(
            _csv_stream(services, job),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="refused-{job.id}.csv"'},
        )
    with services.engine.connect() as connection:
        rows = repository.refused_page(connection, job_id, after_line, limit)
    next_url = (
        str(request.url.include_query_params(after_line=rows[-1].line))
        if len(rows) == limit
        else None
    )
    return RefusedPage(items=[refused_view(job, row) for row in rows], next=next_url)


def _csv_stream(services: Services, job: Job) -> Iterator[str]:
    with services.engine.connect() as connection:
        yield from refused_csv(job, repository.iter_refused(connection, job.id))


def _job(services: Services, tenant: Tenant, job_id: uuid.UUID) -> Job:
    logs.bind(job_id=job_id)
    with services.engine.connect() as connection:
        job = repository.tenant_job(connection, tenant.name, job_id)
    if job is None:
        raise job_not_found(job_id)
    return job
