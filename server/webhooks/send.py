"""One attempt: the body signed as Standard Webhooks says, posted to the checked address."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from server.outbound import Destination, HostNotFound, RefusedUrl, pinned, resolve
from server.settings import IPNetwork

USER_AGENT = "csv-import-webhooks"


@dataclass(frozen=True)
class Attempt:
    """What one attempt found: delivered (a 2xx answer), or why not."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry: bool = True  # False: no later attempt can do better (the address is refused)


def body_of(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signed_headers(secret: str, delivery_id: uuid.UUID, body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": str(delivery_id),
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(str(delivery_id), now, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def attempt(
    url: str,
    secret: str,
    delivery_id: uuid.UUID,
    body: str,
    allowed: Sequence[IPNetwork],
    timeout: float,
) -> Attempt:
    try:
        destination = resolve(url, allowed)
    except HostNotFound as error:
        return Attempt(False, error=str(error))
    except RefusedUrl as error:
        return Attempt(False, error=str(error), retry=False)
    headers = signed_headers(secret, delivery_id, body)
    try:
        status = post(destination, headers, body.encode(), timeout)
    except httpx.HTTPError as error:
        return Attempt(False, error=f"{type(error).__name__}: {error}")
    if 200 <= status < 300:
        return Attempt(True, status)
    return Attempt(False, status, f"the receiver answered {status}")


def post(destination: Destination, headers: dict[str, str], body: bytes, timeout: float) -> int:
    """POST to the address that was checked; redirects are not followed."""
    url, host, extensions = pinned(destination)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        answer = client.post(url, content=body, headers={**headers, **host}, extensions=extensions)
    return answer.status_code
