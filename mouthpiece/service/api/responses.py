"""OpenAPI documentation of the error responses each route can give (all `ErrorResponse`)."""

from __future__ import annotations

from mouthpiece.service.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "malformed request", 401: "missing, invalid, expired or revoked credentials",
    403: "not allowed (admin only, plan limit, or an invalid download link)", 404: "not found",
    409: "conflict with the current state", 413: "request body too large",
    415: "unsupported content type", 422: "invalid or unknown field",
    429: "rate limit, concurrent-job limit or daily quota reached (see Retry-After)",
    503: "a dependency is unavailable",
}


def errors(*statuses: int) -> dict[int | str, dict]:
    """`responses=` for a route: each status documented with the JSON error body."""
    common = (400, 413, 422, 429)  # any route can be refused for these (body cap, IP limit, validation)
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
            for status in sorted(set(statuses) | set(common))}
