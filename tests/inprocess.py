"""Run the real acceptance and loading code in this process, without HTTP or a broker.

For tests that load many small files (property-based ones): the same functions the API and
the worker call, against the real PostgreSQL.
"""

from __future__ import annotations

import time
import uuid

from server.api.accept import accept
from server.api.options import parse_options
from server.api.upload import Upload
from server.db import worker_engine
from server.jobs.model import Job
from server.jobs.repository import get_job, mark_published
from server.keys.keys import Tenant
from server.loading.segment import Outcome, ProgressHook, Segment, load_segment
from server.settings import get_settings
from server.storage import LocalStorage


def load(
    content: bytes, target: str, on_progress: ProgressHook | None = None, **fields: str
) -> Job:
    settings = get_settings()
    storage = LocalStorage(settings.upload_dir)
    key = f"{uuid.uuid4()}.csv"
    with storage.create(key) as sink:
        sink.write(content)
    storage.commit(key)
    engine = worker_engine(settings)
    try:
        job = accept(
            engine,
            storage,
            settings,
            Tenant("tests"),
            Upload(key, "data.csv", len(content), "-"),
            parse_options({"target": target, **fields}),
            None,
        )
        with engine.begin() as connection:
            # This process stands in for the broker: the API's sweeper must not publish it.
            mark_published(connection, job.id)
        segment = Segment(job.id, time.monotonic() + 60, "test", on_progress)
        while load_segment(engine, storage, settings, segment) is Outcome.PAUSED:
            pass
        with engine.connect() as connection:
            final = get_job(connection, job.id)
    finally:
        engine.dispose()
        storage.delete(key)
    assert final is not None
    return final
