"""The service's error tree and the one place it becomes HTTP.

Every error leaves as ``{"error": {"code", "message", "details"}}`` with the right status::

    ScoregateError (500 internal_error: our own bug)
    ├── InvalidRequest (422)          bad input the schema could not catch; names the field
    ├── NotAuthenticated (401)        no key, or an unknown or revoked key
    ├── Forbidden (403)               the key's role is too weak
    │   └── UseCaseForbidden (403)    the policy forbids handing out scores for this use
    ├── NotFound (404)
    ├── Conflict (409)
    ├── PayloadTooLarge (413)
    └── ServiceUnavailable (503)      a dependency (database, limiter store) is down
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotAuthenticated",
    "NotFound",
    "PayloadTooLarge",
    "ScoregateError",
    "ServiceUnavailable",
    "UseCaseForbidden",
    "error_body",
    "install_error_handlers",
    "responses_for",
]

log = logging.getLogger("scoregate.errors")


class ScoregateError(Exception):
    """Base of the service's errors; subclasses carry their HTTP status and code."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class InvalidRequest(ScoregateError):
    status_code = 422
    code = "invalid_request"


class NotAuthenticated(ScoregateError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(ScoregateError):
    status_code = 403
    code = "forbidden"


class UseCaseForbidden(Forbidden):
    code = "use_case_forbidden"


class NotFound(ScoregateError):
    status_code = 404
    code = "not_found"


class Conflict(ScoregateError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ScoregateError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(ScoregateError):
    status_code = 503
    code = "service_unavailable"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def responses_for(*errors: type[ScoregateError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route's documented domain errors."""
    return {error.status_code: {"description": error.__doc__ or error.code} for error in errors}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ScoregateError)
    def _domain(_: Request, exc: ScoregateError) -> JSONResponse:
        headers = None
        retry_after = exc.details.get("retry_after")
        if isinstance(retry_after, int | float):
            headers = {"Retry-After": str(max(1, round(retry_after)))}
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": _field_path(tuple(error["loc"])),
                "message": error["msg"],
                "type": error["type"],
            }
            for error in exc.errors()
        ]
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        status = 400 if first.get("type") == "json_invalid" else 422
        code = "malformed_json" if status == 400 else "validation_error"
        message = f"{first['field']}: {first['message']}"
        return JSONResponse(error_body(code, message, {"errors": problems}), status)

    @app.exception_handler(StarletteHTTPException)
    def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request.unhandled.error", extra={"error_type": type(exc).__name__})
        return JSONResponse(error_body("internal_error", "an internal error occurred"), 500)
