"""Every request gets an id: the caller's `X-Request-ID` when it is a sane one, else a new
one. It is on every log line of the request and in the response's `X-Request-ID` header.
Every request is counted and timed by its route (the template, not the URL).

A plain ASGI middleware: it adds a header, opens a logging scope and counts, and never wraps
a response body (event streams pass through untouched).
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import logs, measures

HEADER = b"x-request-id"
SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = given_id(scope) or uuid.uuid4().hex
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (HEADER, request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        started = time.monotonic()
        try:
            with logs.scope(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            count(scope, status, time.monotonic() - started)


def count(scope: Scope, status: int, seconds: float) -> None:
    route = getattr(scope.get("route"), "path", "unmatched")
    measures.REQUESTS.labels(scope["method"], route, str(status)).inc()
    measures.REQUEST_SECONDS.labels(scope["method"], route).observe(seconds)


def given_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER and SANE.fullmatch(value):
            return str(value.decode())
    return None
