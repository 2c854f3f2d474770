"""Probes and metrics: /healthz (process alive), /readyz (DB, queue, storage), /metrics (Prometheus)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from mouthpiece.service.api.deps import MetricsReader, ServicesDep
from mouthpiece.service.api.responses import errors
from mouthpiece.service.queue import pending
from mouthpiece.service.schemas import HealthOut, ReadyOut

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut, "description": "not ready"}})
def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the database, the queue and the storage are reachable (503 naming what is not)."""
    checks = {}
    for name, probe in (("database", lambda: _ping_db(services)),
                        ("queue", lambda: pending(services.queue)),
                        ("storage", services.storage.ping)):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure of a dependency means "not ready", reported by name
            log.warning("readiness: %s unavailable: %s", name, exc)
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _ping_db(services) -> None:
    with services.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


@router.get("/metrics", response_class=Response, dependencies=[MetricsReader], responses={200: {
    "description": "Prometheus text exposition", "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
    **errors(401, 403)})
def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics: requests by route and status, latency histograms, queue depth by
    priority, jobs by status, job durations, failures by reason, quota and rate-limit refusals.
    Needs `Authorization: Bearer` with the metrics scrape token (`MOUTHPIECE_METRICS_TOKEN`) or
    an admin's access token."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
