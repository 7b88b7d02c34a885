"""Who is calling: an API key in `Authorization: Bearer <key>` names the tenant.

An event stream may be opened instead with the short-lived token that its URL carries
(browsers cannot send headers with an EventSource). A token that does not open the job
(expired, tampered with, made for another job or tenant) gets the very 404 of a job that
does not exist, so that no token, good or bad, tells whether an id exists. A missing or
unknown key gets a 401, with `WWW-Authenticate: Bearer`: it says nothing about any job.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from server import logs
from server.api.deps import HubDep, Services, ServicesDep
from server.api.errors import ApiError, job_not_found
from server.jobs.model import Job
from server.keys import tokens
from server.keys.keys import Tenant, find_tenant

bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer <key>` (`csv-import-keys create` makes one)",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
EventsToken = Annotated[
    str | None,
    Query(
        max_length=100,
        description=(
            "the token of the `events_url` a job came with, for clients that cannot send headers"
        ),
    ),
]


def current_tenant(services: ServicesDep, credentials: Credentials) -> Tenant:
    if credentials is None:
        raise _unauthorized(
            "missing_api_key", "send an API key: Authorization: Bearer <key>", "Bearer"
        )
    with services.engine.connect() as connection:
        tenant = find_tenant(connection, credentials.credentials)
    if tenant is None:
        raise _unauthorized(
            "invalid_api_key",
            "the API key is unknown or was revoked",
            'Bearer error="invalid_token"',
        )
    logs.bind(tenant=tenant.name)
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]


async def events_job(
    job_id: uuid.UUID,
    services: ServicesDep,
    hub: HubDep,
    credentials: Credentials,
    token: EventsToken = None,
) -> Job:
    """The job whose events are asked for: the key's tenant's, or the one the URL's token
    was made for. Thousands of browsers may open one job's events at once: the hub reads
    its row once for all of them."""
    tenant = None
    if credentials is not None or token is None:
        tenant = await run_in_threadpool(current_tenant, services, credentials)
    job = await hub.job(job_id)
    if job is None:
        raise job_not_found(job_id)
    if tenant is not None:
        allowed = job.tenant == tenant.name
    else:
        allowed = tokens.opens(services.secret, token or "", job_id, job.tenant, time.time())
    if not allowed:
        raise job_not_found(job_id)
    return job


EventsJobDep = Annotated[Job, Depends(events_job)]


def events_token(services: Services, job: Job) -> str:
    expires = int(time.time()) + services.settings.events_token_seconds
    return tokens.sign(services.secret, job.id, job.tenant, expires)


def _unauthorized(code: str, message: str, challenge: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})
