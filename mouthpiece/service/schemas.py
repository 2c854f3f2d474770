"""Request and response bodies of the HTTP API (pydantic), separate from the database models.

Every response model is declared on its route so that /openapi.json describes exactly what
the service returns (schemathesis checks responses against it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

JobState = Literal["queued", "running", "succeeded", "failed", "canceled"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable reason, e.g. quota_exceeded")
    message: str = Field(description="what went wrong and what to change")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid (≤ 900)")
    refresh_expires_in: int = Field(description="seconds the refresh token is valid, if unused")


class RefreshRequest(_Strict):
    refresh_token: str = Field(min_length=1, max_length=256)


class JobCreated(BaseModel):
    id: str
    status: JobState
    queue_position: int | None = Field(description="1 = next to run; null once running or finished")


class JobError(BaseModel):
    code: str
    message: str


class JobResult(BaseModel):
    video_url: str = Field(description="expiring signed URL of the MP4")
    expires_at: int = Field(description="UTC epoch seconds after which video_url stops working")
    frames: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    resolution: list[int] | None = None
    warnings: list[str] = []


class JobStatus(BaseModel):
    id: str
    status: JobState
    kind: Literal["audio", "text"]
    progress: float = Field(ge=0.0, le=1.0)
    cancel_requested: bool = Field(description="a cancel was asked; a running job stops within seconds")
    queue_position: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    charged_s: float = Field(description="seconds of video reserved from the daily quota")
    params: dict = Field(description="the validated generation parameters")
    checkpoint: dict | None = Field(description="checkpoint the job runs on: {ref, sha256, route}")
    error: JobError | None
    result: JobResult | None


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int


class PlanOut(BaseModel):
    name: str
    max_duration_s: float
    max_resolution: int
    daily_video_s: float
    concurrent_jobs: int


class QuotaOut(BaseModel):
    day: str = Field(description="UTC day the usage counts against (YYYY-MM-DD)")
    used_s: float
    limit_s: float
    remaining_s: float


class MeResponse(BaseModel):
    id: str
    name: str
    plan: PlanOut
    quota: QuotaOut
    active_jobs: int
    webhook_secret: str = Field(description="verifies X-Mouthpiece-Signature of your webhooks "
                                            "(HMAC-SHA256 of the raw body)")


class CanaryRequest(_Strict):
    ref: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._@-]+$",
                     description="installed checkpoint `id@version` or alias")
    percent: int = Field(ge=0, le=100, description="share of users (by stable hash) routed to it")


class CanaryOut(BaseModel):
    ref: str | None
    percent: int


class ApiKeyOut(BaseModel):
    prefix: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class UserOut(BaseModel):
    id: str
    name: str
    plan: str
    created_at: float
    disabled_at: float | None
    keys: list[ApiKeyOut]


class UserList(BaseModel):
    users: list[UserOut]


class CreateUserRequest(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    plan: Literal["basic", "premium", "admin"]


class CreatedUser(BaseModel):
    user: UserOut
    api_key: str = Field(description="shown once; only its hash is stored")


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
