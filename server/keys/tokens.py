"""Short-lived tokens that open one job's event stream, for browsers: an EventSource
cannot send an Authorization header, so its URL carries the proof instead.

    token = "<expires>.<mac>"   expires: Unix seconds
                                mac: HMAC-SHA256(secret, "events", job id, tenant, expires)

The token holds no name and no secret: only the server can make one, it opens only the
job it was made for, only for the tenant that owns that job, and only until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

_TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def sign(secret: bytes, job_id: uuid.UUID, tenant: str, expires: int) -> str:
    return f"{expires}.{_mac(secret, job_id, tenant, expires)}"


def opens(secret: bytes, token: str, job_id: uuid.UUID, tenant: str, now: float) -> bool:
    """Whether `token` opens the events of `job_id`, owned by `tenant`, at `now`."""
    found = _TOKEN.fullmatch(token)
    if found is None or int(found[1]) < now:
        return False
    expected = _mac(secret, job_id, tenant, int(found[1]))
    return hmac.compare_digest(found[2].encode(), expected.encode())


def _mac(secret: bytes, job_id: uuid.UUID, tenant: str, expires: int) -> str:
    message = "\n".join(("events", str(job_id), tenant, str(expires))).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
