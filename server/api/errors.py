"""Every error the API answers has one shape: {"error": {"code", "message", ...}}."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

# For answers given before the body was read to its end (too large, or stalled): the
# connection cannot carry another request, so it is closed at once.
BODY_LEFT_UNREAD = {"Connection": "close"}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, **extra}
        self.headers = headers


def job_not_found(job_id: uuid.UUID) -> ApiError:
    """The one answer for a job that is missing, another tenant's, or not opened by a token:
    nobody can tell these apart, so nobody can probe for ids."""
    return ApiError(404, "job_not_found", f"no import with id {job_id}")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"error": error.body}, status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        body = {"code": "invalid_request", "message": "; ".join(problems)}
        return JSONResponse({"error": body}, status_code=422)
