"""GET /v1/files/{job_id}/{name}: result downloads through expiring HMAC-signed links.

The link is the credential (so a `<video src>` can use it); it names the job and a file from a
fixed set, and the storage key is rebuilt from the job's owner — nothing from the URL ever
becomes part of a path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from mouthpiece.service.api.deps import JOB_ID_RE, ServicesDep, SessionDep
from mouthpiece.service.api.responses import errors
from mouthpiece.service.db import Job
from mouthpiece.service.errors import ApiError
from mouthpiece.service.storage import job_key
from mouthpiece.service.urls import invalid_link

router = APIRouter(prefix="/v1/files", tags=["files"])

DOWNLOADABLE = {"result.mp4": "video/mp4", "motion.json": "application/json"}


@router.get("/{job_id}/{name}", response_class=StreamingResponse, responses={
    **errors(403, 404),  # 404: unknown or forged link; 403: expired link
    200: {"description": "the file", "content": {
        "video/mp4": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object"}}}},
})
def download(job_id: str, name: str, services: ServicesDep, session: SessionDep,
             expires: Annotated[int, Query(ge=0, le=2**40, description="from the signed link")],
             sig: Annotated[str, Query(min_length=1, max_length=128, description="from the signed link")],
             ) -> StreamingResponse:
    """Download a job's file with the signed link from GET /v1/jobs/{id} (no other credential)."""
    if name not in DOWNLOADABLE or not JOB_ID_RE.match(job_id):
        raise ApiError(404, "not_found", "no such file")
    job = session.get(Job, job_id)
    if job is None:
        raise invalid_link()
    services.urls.verify(job.user_id, job.id, name, expires, sig)
    key = job_key(job.user_id, job.id, name)
    if job.purged_at is not None or not services.storage.exists(key):
        raise ApiError(404, "not_found", "this file is no longer stored")
    size = services.storage.size(key)
    return StreamingResponse(services.storage.open_stream(key), media_type=DOWNLOADABLE[name], headers={
        "Content-Length": str(size), "Cache-Control": "private, no-store",
        "Content-Disposition": f'attachment; filename="{job.id}-{name}"'})
