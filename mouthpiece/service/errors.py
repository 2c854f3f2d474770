"""Every HTTP error as JSON `{"error": {"code", "message"}}` (CONTRACT.md), FastAPI's own included.

Routes raise `ApiError(status, code, message)`; library refusals (`InputError`) become 422;
FastAPI/Starlette HTTP errors and request validation errors are rewritten to the same shape, so
a client never sees `{"detail": …}` or a traceback (anything unexpected becomes a JSON 500 in
`middleware.RequestContextMiddleware`).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mouthpiece.types import InputError

# Default codes for statuses raised without one (by FastAPI, Starlette or StaticFiles).
STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone",
    413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
    429: "rate_limited", 500: "internal", 503: "unavailable",
}


class ApiError(Exception):
    """A refusal with an HTTP status, a stable machine code and a message saying what to change."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=dict(headers or {}))


def describe_validation_errors(errors: list[dict]) -> str:
    """One line naming each offending field, e.g. `query.limit: Input should be ≤ 100`."""
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    """Route every error raised while handling a request to the JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(InputError)
    async def _input_error(_request: Request, exc: InputError) -> JSONResponse:
        return error_response(422, "invalid_input", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", describe_validation_errors(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, exc.headers)
