"""ASGI middleware: request ids, JSON access logs and request metrics; per-IP rate limit and body caps.

Both run before FastAPI reads a request body, so a flood or an oversized upload is refused
before any of it is parsed, spooled or held in memory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid

from fastapi import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mouthpiece.service.errors import ApiError
from mouthpiece.service.logs import request_id_var
from mouthpiece.service.services import Services

log = logging.getLogger("mouthpiece.service.access")

SMALL_BODY_BYTES = 64 * 1024  # every request body except a job upload
UPLOAD_PATH = "/v1/jobs"
UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")  # probes and scrapes: never rate limited
# Signed download links must not leak through Referer; no response is content-sniffed.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": raw}, \
        {"type": "http.response.body", "body": body}


def route_label(app, scope: Scope) -> str:
    """The route template of a request (`/v1/jobs/{job_id}`), bounded in number for metric labels."""
    route = scope.get("route")
    if route is None:
        for candidate in app.routes:
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                route = candidate
                break
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    return path or "static"


class RequestContextMiddleware:
    """Gives each request an id (`X-Request-ID`), logs it as one JSON line, counts it in metrics,
    and turns anything unhandled into a JSON 500 that carries the id."""

    def __init__(self, app: ASGIApp, services: Services, router_app) -> None:
        self.app, self.services, self.router_app = app, services, router_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if not response_started:
                start, body = _json_error(500, "internal", f"internal error (request id {request_id})")
                await send_with_id(start)
                await send(body)
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(self.router_app, scope)
            self.services.metrics.observe_request(scope["method"], route, status, elapsed)
            log.info("%s %s %d", scope["method"], route, status, extra={
                "request_id": request_id, "method": scope["method"], "path": scope["path"], "route": route,
                "status": status, "duration_ms": round(elapsed * 1000, 2),
                "client": (scope.get("client") or ("-",))[0], "pid": os.getpid()})
            request_id_var.reset(token)


class GuardMiddleware:
    """Per-IP token bucket (429 + Retry-After) and a request body cap (413), checked on the
    declared Content-Length and again while the body streams in."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        services = self.services
        client = (scope.get("client") or ("unknown",))[0]
        try:
            refusal = services.throttle("ip", client)
        except ApiError as exc:  # the shared limiter's store is unreachable (503)
            refusal = exc
        if refusal is not None:
            await self._refuse(send, refusal.status, refusal.code, refusal.message, refusal.headers)
            return
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH
        cap = services.settings.max_upload_bytes if upload else SMALL_BODY_BYTES
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await self._refuse(send, 413, "too_large", _too_large(cap))
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise HTTPException(413, _too_large(cap))
            return message

        await self.app(scope, capped_receive, send)

    @staticmethod
    async def _refuse(send: Send, status: int, code: str, message: str, headers: dict | None = None) -> None:
        start, body = _json_error(status, code, message, headers)
        await send(start)
        await send(body)


def _too_large(cap: int) -> str:
    return f"request body over the {cap / 2**20:g} MiB limit; send smaller files"
