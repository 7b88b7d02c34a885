"""Each tenant's share: how many uploads a minute, how many bytes held in storage.

Uploads per minute are a token bucket in Redis (one key per tenant, refilled continuously,
checked and taken in one script, so every API process shares it). Bytes held are what the
tenant's jobs keep in storage until housekeeping removes their files. Over either limit, an
upload is refused with 429 and a `Retry-After` before its body is read. A Redis that does
not answer lets uploads through (a warning is logged): the limit protects the service, its
outage must not stop it.
"""

from __future__ import annotations

import logging
import math
import time

import redis
from sqlalchemy import Engine

from server.api.errors import ApiError
from server.jobs import repository
from server.settings import Settings

log = logging.getLogger(__name__)
STORED_RETRY_SECONDS = 300

# KEYS[1]: the bucket; ARGV: capacity, tokens per second, now. Returns the seconds to wait
# for a token (0: one was taken).
_TAKE = """
local capacity, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or capacity, tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""


class Limits:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings, self.engine = settings, engine
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        self.take = self.redis.register_script(_TAKE)

    def admit(self, tenant: str) -> None:
        """Raise 429 if the tenant may not upload now."""
        self._uploads(tenant)
        self._stored(tenant)

    def _uploads(self, tenant: str) -> None:
        per_minute = self.settings.tenant_uploads_per_minute
        if not per_minute:
            return
        try:
            key = f"csvimport:tenant:{tenant}:uploads"
            wait = float(self.take([key], [per_minute, per_minute / 60, time.time()]))
        except redis.RedisError as error:
            log.warning("tenant %s: upload rate not checked, Redis is away (%s)", tenant, error)
            return
        if wait > 0:
            raise _too_many(
                "upload_rate",
                f"tenant {tenant!r} may upload {per_minute} files a minute "
                "(TENANT_UPLOADS_PER_MINUTE)",
                wait,
            )

    def _stored(self, tenant: str) -> None:
        limit = self.settings.tenant_max_stored_bytes
        if not limit:
            return
        with self.engine.connect() as connection:
            held = repository.stored_bytes(connection, tenant)
        if held >= limit:
            raise _too_many(
                "storage_full",
                f"tenant {tenant!r} holds {held} bytes of files, the most it may "
                "(TENANT_MAX_STORED_BYTES); they go as housekeeping removes finished jobs' files",
                STORED_RETRY_SECONDS,
            )


def _too_many(code: str, message: str, wait: float) -> ApiError:
    seconds = max(1, math.ceil(wait))
    return ApiError(429, code, message, headers={"Retry-After": str(seconds)}, retry_after=seconds)
