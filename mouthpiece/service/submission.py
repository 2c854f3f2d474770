"""Job submission: whitelisted form fields → validated params and header-checked uploads → one
transaction (idempotency, atomic quota reserve, concurrent-job limit, job row) → stored uploads
→ queue.

Clients choose only what `JobForm` lists (the documented generation parameters, text, language,
webhook). Priority, plan, checkpoint and low-level engine options come from the server; any
other field is refused with 422 naming it. Uploads are never trusted: the API checks their
headers (type by content, size, pixel cap, length — intake.py) and stores them under generated
names; the worker decodes and re-encodes them before the engine sees them. A refused
submission leaves nothing in storage or the database.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import unicodedata
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select, bindparam, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from mouthpiece.params import BOUNDS, MAX_DURATION_S, MAX_SEED, GenerationParams
from mouthpiece.service import intake, jobstore, quotas, webhooks
from mouthpiece.service.auth import AccessClaims, user_for_access
from mouthpiece.service.db import ACTIVE_STATUSES, Job, User, new_id, now
from mouthpiece.service.errors import ApiError, describe_validation_errors
from mouthpiece.service.plans import Plan, plan_named
from mouthpiece.service.queue import enqueue
from mouthpiece.service.services import Services
from mouthpiece.service.storage import UPLOAD_NAMES, job_key, job_prefix

log = logging.getLogger(__name__)

FILE_FIELDS = ("image", "audio", "voice")
MAX_TEXT_CHARS = 2000  # as the synthesizer's own limit
MAX_VOICE_S = 60.0  # seconds of reference voice for a text job
MAX_FORM_FIELDS = 40
MAX_FIELD_BYTES = 16 * 1024  # any non-file form field
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"  # visible ASCII
# Quota charge of a text job before its speech exists: generous speaking-time estimates.
_SPEECH_S_PER_CHAR = 0.09  # alphabetic scripts (≈ 11 characters per second)
_SPEECH_S_PER_CJK = 0.3  # one CJK character ≈ one syllable
_SPEECH_PAUSE_S = 1.0


def _bounded(name: str, default):
    lo, hi = BOUNDS[name][:2]
    kind = int if isinstance(default, int) else float
    return Field(default, ge=kind(lo), le=kind(hi))


class JobForm(BaseModel):
    """The non-file form fields a client may send with POST /v1/jobs (all optional)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS,
                             description="speak this text (instead of an `audio` file)")
    lang: str = Field("en", pattern=r"^[a-z]{2,3}(-[a-z0-9]+)*$", max_length=16,
                      description="language of `text`: en, zh, or an espeak-ng code")
    transcript: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS,
                                   description="the words spoken in `audio`, for exact alignment")
    duration: float | None = Field(None, gt=0, le=MAX_DURATION_S,
                                   description="output seconds (default: the speech's length)")
    pad: bool = Field(False, description="fill with silence up to `duration`")
    trim: bool = Field(False, description="cut the speech at `duration`")
    min_resolution: int = Field(512, ge=BOUNDS["min_resolution"][0], le=BOUNDS["min_resolution"][1],
                                multiple_of=64, description="short side of the animated face crop")
    expand_ratio: float = _bounded("expand_ratio", 0.5)
    inference_steps: int = _bounded("inference_steps", 25)
    dynamic_scale: float = _bounded("dynamic_scale", 1.0)
    motion_scale: float = _bounded("motion_scale", 1.0)
    fps: int = _bounded("fps", 25)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="same inputs + seed → same video")
    smoothing: bool = True
    lip_sync_correction: bool = True
    face_index: int = Field(0, ge=0, le=31, description="which face, largest first")
    full_frame: bool = Field(True, description="composite into the whole portrait (false: face crop)")
    webhook_url: str | None = Field(None, max_length=2000, pattern=r"^https?://[^\s]+$",
                                    description="POSTed a signed JSON summary when the job ends")


ALLOWED_FIELDS = frozenset(FILE_FIELDS) | frozenset(JobForm.model_fields)
_PARAM_FIELDS = ("duration", "pad", "trim", "min_resolution", "expand_ratio", "inference_steps",
                 "dynamic_scale", "motion_scale", "fps", "seed", "smoothing", "lip_sync_correction",
                 "face_index", "full_frame", "transcript")


def request_body_openapi() -> dict:
    """The multipart request body of POST /v1/jobs, for the OpenAPI document."""
    schema = JobForm.model_json_schema()
    properties = {name: _without_null(spec) for name, spec in schema["properties"].items()}
    for name, what in (("image", "portrait (PNG, JPEG or WEBP) — required"),
                       ("audio", "speech (WAV, MP3, M4A, FLAC or OGG); or give `text`"),
                       ("voice", "with `text`: a short recording of the voice to speak in")):
        properties[name] = {"type": "string", "format": "binary", "description": what}
    body = {"type": "object", "properties": properties, "required": ["image"],
            "additionalProperties": False}
    return {"required": True, "content": {"multipart/form-data": {"schema": body}}}


def _without_null(spec: dict) -> dict:
    """`anyOf: [X, null]` → X: form fields are left out, never sent as null."""
    options = [s for s in spec.get("anyOf", ()) if s.get("type") != "null"]
    if len(options) == 1:
        rest = {k: v for k, v in spec.items() if k != "anyOf"}
        return {**options[0], **rest}
    return spec


@dataclass
class Submission:
    form: JobForm
    uploads: dict[str, UploadFile]
    fields: dict[str, str]  # as sent, for the idempotency fingerprint


def parse_form(form: FormData) -> Submission:
    """Whitelist and type-check the form: unknown, repeated or misplaced fields → 422 naming them."""
    fields: dict[str, str] = {}
    uploads: dict[str, UploadFile] = {}
    for name in form.keys():
        if name not in ALLOWED_FIELDS:
            raise ApiError(422, "unknown_field",
                           f"unknown field {name!r}: accepted fields are {', '.join(sorted(ALLOWED_FIELDS))}")
        values = form.getlist(name)
        if len(values) > 1:
            raise ApiError(422, "repeated_field", f"field {name!r} is given {len(values)} times; give it once")
        value = values[0]
        if name in FILE_FIELDS:
            if not isinstance(value, UploadFile):
                raise ApiError(422, "invalid_request", f"field {name!r} must be a file upload")
            if value.filename or (value.size or 0) > 0:  # browsers send empty parts for no file
                uploads[name] = value
        elif isinstance(value, UploadFile):
            raise ApiError(422, "invalid_request", f"field {name!r} must be a plain form value, not a file")
        else:
            fields[name] = value
    try:
        parsed = JobForm.model_validate(fields)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", describe_validation_errors(exc.errors())) from None
    if "image" not in uploads:
        raise ApiError(422, "invalid_request", "field 'image' is required: upload a portrait")
    has_audio, has_text = "audio" in uploads, parsed.text is not None
    if has_audio == has_text:
        raise ApiError(422, "invalid_request", "give exactly one of 'audio' (a speech file) or 'text'")
    if "voice" in uploads and not has_text:
        raise ApiError(422, "invalid_request", "'voice' goes with 'text'; leave it out with 'audio'")
    if parsed.transcript is not None and has_text:
        raise ApiError(422, "invalid_request", "'transcript' goes with 'audio'; 'text' is already the words")
    return Submission(parsed, uploads, fields)


def fingerprint(sub: Submission) -> str:
    """SHA-256 over the fields and the uploaded bytes: what an idempotent retry must repeat."""
    digest = hashlib.sha256(json.dumps(sorted(sub.fields.items())).encode())
    for name in sorted(sub.uploads):
        handle = sub.uploads[name].file
        handle.seek(0)
        file_hash = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            file_hash.update(chunk)
        digest.update(f"\n{name}:{file_hash.hexdigest()}".encode())
        handle.seek(0)
    return digest.hexdigest()


@dataclass
class PreparedJob:
    kind: Literal["audio", "text"]
    params: GenerationParams
    uploads: dict[str, UploadFile]  # role → header-checked upload, stored as it came
    limits: dict  # what the worker's full decode must confirm (intake.clean_inputs)
    charged_s: float
    text: str | None = None
    lang: str | None = None


def prepare(sub: Submission, plan: Plan) -> PreparedJob:
    """Check params against the plan and every upload's headers (InputError → 422); decodes nothing."""
    form = sub.form
    values = {name: getattr(form, name) for name in _PARAM_FIELDS}
    params, _warnings = GenerationParams(**values).validated(max_duration_s=plan.max_duration_s)
    if params.min_resolution > plan.max_resolution:
        raise ApiError(403, "plan_limit", f"min_resolution={params.min_resolution} is above your "
                       f"{plan.name} plan's maximum of {plan.max_resolution}")
    intake.check_image(sub.uploads["image"].file)
    uploads = {"image": sub.uploads["image"]}
    if form.text is None:
        audio_s = intake.check_audio(sub.uploads["audio"].file, plan.max_duration_s, "audio")
        uploads["audio"] = sub.uploads["audio"]
        limits = {"audio_max_s": plan.max_duration_s, "audio_s": round(audio_s, 4)}
        return PreparedJob("audio", params, uploads, limits, charged_s=params.resolve_duration(audio_s))
    limits = {}
    if "voice" in sub.uploads:
        voice_s = intake.check_audio(sub.uploads["voice"].file, MAX_VOICE_S, "voice")
        uploads["voice"] = sub.uploads["voice"]
        limits = {"voice_max_s": MAX_VOICE_S, "voice_s": round(voice_s, 4)}
    text = unicodedata.normalize("NFC", form.text).strip()
    if not text:
        raise ApiError(422, "invalid_input", "text is empty: give the words to speak")
    charged = params.duration if params.duration is not None else estimate_speech_s(text)
    if charged > plan.max_duration_s:
        raise ApiError(403, "plan_limit", f"this text takes about {charged:.0f} s to speak, over your "
                       f"{plan.name} plan's {plan.max_duration_s:g} s per video; shorten it")
    return PreparedJob("text", params, uploads, limits, charged_s=charged, text=text, lang=form.lang)


def check_webhook_target(url: str, allow_private: bool, resolve: webhooks.Resolver = webhooks.system_resolver) -> None:
    """Refuse webhook URLs that would make the service call into its own network (SSRF):
    every address the host resolves to now must be public, unless the operator allows private
    ones. Each delivery checks again and connects only to the address it checked (webhooks.py)."""
    try:
        webhooks.vet(url, allow_private=allow_private, resolve=resolve)
    except webhooks.WebhookRefused as exc:
        raise ApiError(422, "invalid_webhook", str(exc)) from None


def estimate_speech_s(text: str) -> float:
    """Seconds of speech to reserve for `text` (an over-estimate; synthesis decides the truth)."""
    cjk = sum(1 for ch in text if unicodedata.east_asian_width(ch) in ("W", "F"))
    return round(_SPEECH_PAUSE_S + cjk * _SPEECH_S_PER_CJK + (len(text) - cjk) * _SPEECH_S_PER_CHAR, 2)


def _stored_params(params: GenerationParams) -> dict:
    """The validated params a job keeps; the motion source is the worker's (routed checkpoint)."""
    return {k: v for k, v in params.as_dict().items() if k != "motion"}


def _find_by_key(session: Session, user_id: str, key: str) -> Job | None:
    return session.execute(select(Job).where(Job.user_id == user_id, Job.idempotency_key == key)) \
        .scalar_one_or_none()


def _replay(existing: Job, request_hash: str) -> Job:
    if existing.request_hash != request_hash:
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used for a different "
                       "request; use a new key for a new job")
    return existing


@functools.cache
def _active_statement() -> Select:
    jobs = Job.__table__
    return select(func.count()).select_from(jobs).where(jobs.c.user_id == bindparam("user_id"),
                                                        jobs.c.status.in_(ACTIVE_STATUSES))


def _active_jobs(session: Session, user_id: str) -> int:
    return session.connection().execute(_active_statement(), {"user_id": user_id}).scalar_one()


def _too_many_jobs(plan: Plan) -> ApiError:
    return ApiError(429, "too_many_jobs", f"your {plan.name} plan runs at most {plan.concurrent_jobs} "
                    "jobs at once; wait for one to finish", {"Retry-After": "5"})


def _seconds_to_next_day() -> int:
    return 86400 - int(now()) % 86400


def insert_job(session: Session, *, user: User, plan: Plan, job_id: str, prepared: PreparedJob,
               inputs: dict, idempotency_key: str | None, request_hash: str,
               timeout_s: float, webhook_url: str | None) -> tuple[Job, bool]:
    """One transaction: idempotency, quota reserve, concurrent-job limit, job row → (job, replayed).

    Same-user submissions are serialized before the active jobs are counted: on PostgreSQL by a
    lock on the user's row, on SQLite by the database write lock that the quota upsert (the
    first write) takes. The count is therefore exact, and a refusal rolls the reservation back.
    """
    try:
        if session.get_bind().dialect.name != "sqlite":
            session.execute(select(User.id).where(User.id == user.id).with_for_update())
        if idempotency_key and (existing := _find_by_key(session, user.id, idempotency_key)):
            session.rollback()
            return _replay(existing, request_hash), True
        day = quotas.reserve(session, user.id, plan, prepared.charged_s)
        if _active_jobs(session, user.id) >= plan.concurrent_jobs:
            raise _too_many_jobs(plan)
        row = dict(id=job_id, user_id=user.id, status="queued", priority=plan.priority, kind=prepared.kind,
                   params=_stored_params(prepared.params), inputs=inputs, idempotency_key=idempotency_key,
                   request_hash=request_hash, charged_s=prepared.charged_s, charged_day=day,
                   timeout_s=timeout_s, webhook_url=webhook_url, created_at=now(), progress=0.0,
                   cancel_requested=False, refunded=False, attempts=0)
        session.connection().execute(_job_insert(), row)  # Core: no unit-of-work flush for one row
        session.commit()
        return Job(**row), False
    except quotas.QuotaExceeded as exc:
        session.rollback()
        raise ApiError(429, "quota_exceeded", f"{exc}; the quota resets at 00:00 UTC",
                       {"Retry-After": str(_seconds_to_next_day())}) from None
    except IntegrityError:
        session.rollback()  # an identical Idempotency-Key won the race: answer with its job
        existing = _find_by_key(session, user.id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, request_hash), True
    except BaseException:
        session.rollback()
        raise


@functools.cache
def _job_insert():
    return insert(Job.__table__)


@functools.cache
def _position_statement() -> Select:
    jobs = Job.__table__
    priority, created = bindparam("priority"), bindparam("created_at")
    return select(func.count()).select_from(jobs).where(
        jobs.c.status == "queued",
        (jobs.c.priority > priority) | ((jobs.c.priority == priority) & (jobs.c.created_at < created)))


def queue_position(db: Session | Connection, job) -> int | None:
    """1 for the next job to run (priority first, then age); None unless queued.

    `job`: a Job or a row with its columns. One count over the (status, priority, created_at)
    index: it reads only the queued entries ahead of the job."""
    if job.status != "queued":
        return None
    connection = db.connection() if isinstance(db, Session) else db
    ahead = connection.execute(_position_statement(),
                               {"priority": job.priority, "created_at": job.created_at}).scalar_one()
    return ahead + 1


def submit(services: Services, claims: AccessClaims, form: FormData,
           idempotency_key: str | None) -> tuple[Job, int | None, bool]:
    """The whole submission (one worker thread) → (job, queue position, replayed).

    Cheap checks first (form, token still valid, plan, upload headers), then one transaction
    decides (idempotency, quota, concurrency, job row); only an accepted job's uploads are
    stored, and only then is it queued. Nothing is decoded here (intake.py).
    """
    sub = parse_form(form)
    if sub.form.webhook_url:
        check_webhook_target(sub.form.webhook_url, services.settings.webhook_allow_private,
                             services.resolve_host)
    with services.sessions() as session:
        user = user_for_access(session, claims)
        plan = plan_named(user.plan)
        try:
            prepared = prepare(sub, plan)
        except ApiError as exc:
            if exc.code == "plan_limit":
                services.metrics.quota_refusals.labels(plan.name, "plan_limit").inc()
            raise
        job_id = new_id()
        inputs: dict = {role: job_key(user.id, job_id, UPLOAD_NAMES[role]) for role in prepared.uploads}
        inputs["limits"] = prepared.limits
        if prepared.kind == "text":
            inputs.update(text=prepared.text, lang=prepared.lang)
        try:
            job, replayed = insert_job(
                session, user=user, plan=plan, job_id=job_id, prepared=prepared, inputs=inputs,
                idempotency_key=idempotency_key, request_hash=fingerprint(sub),
                timeout_s=services.settings.job_timeout_s, webhook_url=sub.form.webhook_url)
        except ApiError as exc:
            if exc.code in ("quota_exceeded", "too_many_jobs"):
                reason = "daily_quota" if exc.code == "quota_exceeded" else "concurrent_jobs"
                services.metrics.quota_refusals.labels(plan.name, reason).inc()
            raise
        position = queue_position(session, job)
        if replayed:
            return job, position, True
        try:
            for role, upload in prepared.uploads.items():
                services.storage.put_stream(inputs[role], upload.file)
        except BaseException as exc:
            log.exception("job %s: could not store its uploads; failing it", job.id)
            services.storage.delete_prefix(job_prefix(user.id, job.id))
            jobstore.abandon(session, job.id, jobstore.INTERNAL, f"could not store the uploads ({type(exc).__name__})")
            raise
    try:
        enqueue(services.queue, job.id, job.priority)
    except Exception:  # the job row is the truth: the worker's reaper re-queues lost messages
        log.exception("could not enqueue job %s; the reaper will pick it up", job.id)
    return job, position, False
