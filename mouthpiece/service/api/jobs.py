"""Jobs: submit (multipart), status, server-sent events, cancel, list — all scoped to the user."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from python_multipart.exceptions import FormParserError
from sqlalchemy import Row, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mouthpiece.service import jobstore
from mouthpiece.service.api.deps import Claims, ServicesDep, Tenant, TenantScope, owned_job_row
from mouthpiece.service.api.responses import errors
from mouthpiece.service.auth import AccessClaims, user_for_access
from mouthpiece.service.db import Job, now
from mouthpiece.service.errors import ApiError
from mouthpiece.service.schemas import JobCreated, JobError, JobList, JobResult, JobState, JobStatus
from mouthpiece.service.services import Services
from mouthpiece.service.storage import job_key
from mouthpiece.service.submission import (IDEMPOTENCY_KEY_PATTERN, MAX_FIELD_BYTES, MAX_FORM_FIELDS,
                                           queue_position, request_body_openapi, submit)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

EVENT_POLL_S = 0.5
EVENT_KEEPALIVE_S = 15.0
RESULT_FILE = "result.mp4"


def job_status(db: Session | Connection, services: Services, job: Job | Row, base_url: str) -> JobStatus:
    """The API view of a job (never its storage keys); `job` may be a plain row of its columns."""
    error = JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    return JobStatus(
        id=job.id, status=job.status, kind=job.kind, progress=job.progress or 0.0,
        cancel_requested=bool(job.cancel_requested),
        queue_position=queue_position(db, job), created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, charged_s=job.charged_s,
        params=job.params or {}, checkpoint=job.checkpoint, error=error,
        result=_result(services, job, base_url))


def _result(services: Services, job: Job | Row, base_url: str) -> JobResult | None:
    if job.status != "succeeded" or not job.result or job.purged_at is not None:
        return None
    key = job_key(job.user_id, job.id, RESULT_FILE)
    ttl = services.settings.signed_url_ttl_s
    url = services.storage.presigned_url(key, ttl)
    if url is None:
        signed = services.urls.sign(job.user_id, job.id, RESULT_FILE)
        url, expires_at = base_url.rstrip("/") + signed.path, signed.expires_at
    else:
        expires_at = int(now()) + ttl
    info = job.result
    resolution = info.get("resolution")
    return JobResult(
        video_url=url, expires_at=expires_at, frames=_number(info.get("frames"), int),
        fps=_number(info.get("fps"), float), duration_s=_number(info.get("duration_s"), float),
        resolution=[int(v) for v in resolution] if isinstance(resolution, list | tuple) else None,
        warnings=[str(w) for w in info.get("warnings") or []])


def _number(value, kind):
    return kind(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@router.post("", status_code=202, response_model=JobCreated,
             responses=errors(401, 403, 409, 415),
             openapi_extra={"requestBody": request_body_openapi()})
async def submit_job(
    request: Request, claims: Claims, services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN,
        description="retrying with the same key and request returns the same job, never a second one")] = None,
) -> Response:
    """Submit a portrait plus speech (`audio`) or `text` (+ optional `voice`), with optional
    generation parameters as form fields. Unknown fields are refused (422, naming the field).
    Seconds of video are reserved from the daily quota now and refunded if the job fails or is
    canceled."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "send the job as multipart/form-data")
    try:
        form = await request.form(max_files=3, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except FormParserError as exc:  # malformed multipart that Starlette passes through
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
    try:
        job, position, replayed = await run_in_threadpool(submit, services, claims, form, idempotency_key)
    finally:
        await form.close()
    body = JobCreated(id=job.id, status=job.status, queue_position=position)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body.model_dump_json(), status_code=202, headers=headers, media_type="application/json")


@router.get("", response_model=JobList, responses=errors(401))
def list_jobs(
    request: Request, tenant: Tenant, services: ServicesDep,
    status: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobList:
    """Your jobs, newest first."""
    query = tenant.jobs()
    if status is not None:
        query = query.where(Job.status == status)
    total = tenant.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = tenant.session.execute(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)) \
        .scalars().all()
    base = str(request.base_url)
    return JobList(jobs=[job_status(tenant.session, services, job, base) for job in rows], total=total)


def _status_json(services: Services, claims: AccessClaims, job_id: str, base_url: str) -> bytes:
    """Token check, the job row and its queue position on one connection: three indexed reads."""
    with services.engine.connect() as connection:
        user = user_for_access(connection, claims)
        job = owned_job_row(connection, user, job_id)
        return job_status(connection, services, job, base_url).model_dump_json().encode()


@router.get("/{job_id}", response_model=JobStatus, responses=errors(401, 404))
async def get_job(job_id: str, request: Request, claims: Claims, services: ServicesDep) -> Response:
    """Status, progress, error, and — once succeeded — an expiring signed URL of the video."""
    if services.inline_reads:  # SQLite in WAL mode: three indexed reads that never wait for a writer
        body = _status_json(services, claims, job_id, str(request.base_url))
    else:  # a database over the network: keep its round trips off the event loop
        body = await run_in_threadpool(_status_json, services, claims, job_id, str(request.base_url))
    return Response(body, media_type="application/json")


@router.post("/{job_id}/cancel", response_model=JobStatus, responses=errors(401, 404))
def cancel_job(job_id: str, request: Request, tenant: Tenant, services: ServicesDep) -> JobStatus:
    """Cancel: a queued job stops at once (quota refunded); a running one within a heartbeat
    (status stays `running` until its worker has stopped it). A finished job is unchanged."""
    job = tenant.job(job_id)
    jobstore.cancel(tenant.session, job.id)
    tenant.session.refresh(job)
    return job_status(tenant.session, services, job, str(request.base_url))


def _owned_job_id(job_id: str, tenant: Tenant) -> TenantScope:
    tenant.job(job_id)  # 404 before the stream starts
    return tenant


@router.get("/{job_id}/events", response_class=StreamingResponse, responses={
    **errors(401, 404),
    200: {"description": "server-sent events: `status` (a JobStatus as JSON) on every change, "
                         "until the job ends", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
})
async def job_events(job_id: str, request: Request, services: ServicesDep,
                     tenant: Annotated[TenantScope, Depends(_owned_job_id)]) -> StreamingResponse:
    """Server-sent events for one job: an `event: status` with the job's JSON whenever it changes,
    ending after the job reaches succeeded, failed or canceled."""
    user, base = tenant.user, str(request.base_url)

    def snapshot() -> JobStatus:
        with services.sessions() as session:
            return job_status(session, services, TenantScope(session, user).job(job_id), base)

    async def stream() -> AsyncIterator[str]:
        last, quiet = None, 0.0
        while True:
            status = await run_in_threadpool(snapshot)
            data = status.model_dump()
            key = (status.status, status.progress, status.queue_position, status.cancel_requested)
            if key != last:
                last, quiet = key, 0.0
                yield f"event: status\ndata: {json.dumps(data)}\n\n"
            elif quiet >= EVENT_KEEPALIVE_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            if status.status in jobstore.TERMINAL_STATUSES or await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
