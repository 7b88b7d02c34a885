"""The worker's side: after each committed batch, a snapshot hash and a stream entry.

Every Redis error is logged and swallowed: an import never fails because progress could not
be shown.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import redis

from server.progress.events import is_final, snapshot_key, stream_key

log = logging.getLogger(__name__)

STREAM_LENGTH = 10_000
# Events of a finished job stay this long, for late subscribers and reconnects.
FINISHED_TTL_SECONDS = 24 * 3600


class ProgressWriter:
    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    def write(self, job_id: uuid.UUID, fields: dict[str, Any]) -> None:
        try:
            self._write(job_id, fields)
        except redis.RedisError as error:
            log.warning("job %s: progress not written to Redis: %s", job_id, error)

    def _write(self, job_id: uuid.UUID, fields: dict[str, Any]) -> None:
        """The stream entry first, then the snapshot with the id of the entry it matches: a
        subscriber that reads an older snapshot gets the newer entry from the stream."""
        snapshot, stream = snapshot_key(job_id), stream_key(job_id)
        data = json.dumps(fields)
        entry_id = self.client.xadd(stream, {"data": data}, maxlen=STREAM_LENGTH, approximate=True)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(snapshot, mapping={"data": data, "stream_id": entry_id})
        if is_final(fields):
            pipe.expire(stream, FINISHED_TTL_SECONDS)
            pipe.expire(snapshot, FINISHED_TTL_SECONDS)
        pipe.execute()

    def close(self) -> None:
        self.client.close()
