"""GET /workers, for operators' keys: every worker process, as it last said of itself in
Redis (server/work/heartbeat.py), the job it holds, and how fast that job goes."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends

from server.api.auth import TenantDep
from server.api.deps import ServicesDep
from server.api.errors import ApiError
from server.api.schemas import WorkerList, WorkerView, errors
from server.jobs import repository
from server.keys.keys import Tenant
from server.progress.events import snapshot_key
from server.work.heartbeat import Beat, read_beats

router = APIRouter(tags=["operations"])


def operator(tenant: TenantDep) -> Tenant:
    if not tenant.operator:
        raise ApiError(
            403,
            "operator_only",
            "only an operator's key sees the workers (csv-import-keys create --operator)",
        )
    return tenant


OperatorDep = Annotated[Tenant, Depends(operator)]


@router.get(
    "/workers",
    summary="Worker processes: alive or gone, the job each holds, its rows per second",
    responses=errors(401, 403),
)
def list_workers(services: ServicesDep, _: OperatorDep) -> WorkerList:
    settings = services.settings
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        beats = read_beats(client)
        progress = {beat.job_id: _progress(client, beat.job_id) for beat in beats if beat.job_id}
    finally:
        client.close()
    with services.engine.connect() as connection:
        tenants = {
            job_id: job.tenant
            for job_id in progress
            if (job := repository.get_job(connection, uuid.UUID(job_id))) is not None
        }
    now = time.time()
    views = [
        _view(beat, now, settings.worker_gone_seconds, tenants, progress.get(beat.job_id or ""))
        for beat in beats
    ]
    return WorkerList(items=views)


def _progress(client: redis.Redis, job_id: str) -> dict[str, Any]:
    data = client.hget(snapshot_key(job_id), "data")
    return json.loads(data) if data else {}


def _view(
    beat: Beat,
    now: float,
    gone_seconds: float,
    tenants: dict[str, str],
    progress: dict[str, Any] | None,
) -> WorkerView:
    state = "gone" if beat.gone(now, gone_seconds) else "busy" if beat.job_id else "idle"
    done = None
    if progress and "rows_loaded" in progress:
        done = progress["rows_loaded"] + progress["rows_refused"]
    return WorkerView(
        name=beat.name,
        host=beat.host,
        pid=beat.pid,
        state=state,
        started_at=_when(beat.started),
        last_beat_at=_when(beat.beat),
        job_id=uuid.UUID(beat.job_id) if beat.job_id else None,
        tenant=tenants.get(beat.job_id or ""),
        holding_since=_when(beat.since) if beat.since else None,
        rows_done=done,
        rows_per_second=(progress or {}).get("rows_per_second"),
    )


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
