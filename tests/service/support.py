"""Helpers for execution-side service tests: settings, users and job rows without the API,
worker processes, and a second (canary) checkpoint bundle.

`submit_job_row(...)` does what the API's submit does after validation: store the inputs under
the job's keys, reserve quota and insert the queued row in one transaction, then enqueue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from PIL import Image

from mouthpiece.service import quotas
from mouthpiece.service.config import Settings
from mouthpiece.service.db import Job, User, new_id, open_database
from mouthpiece.service.plans import plan_named
from mouthpiece.service.queue import enqueue, make_huey
from mouthpiece.service.storage import UPLOAD_NAMES, job_key, make_storage

ROOT = Path(__file__).resolve().parents[2]
FAST_PARAMS = {"min_resolution": 256, "full_frame": False, "seed": 7}  # small face crop: seconds per job


def make_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for tests: short lease so a killed worker's job is re-queued within seconds."""
    base = Settings(data_dir=Path(data_dir), secret_key="test-secret", lease_s=4.0, max_attempts=3,
                    shutdown_grace_s=5.0)
    return replace(base, **overrides)


class Service:
    """Database, storage and queue of one Settings, as the API and the workers see them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine, self.sessions = open_database(settings.db_url)
        self.storage = make_storage(settings)
        self.queue = make_huey(settings)

    def job(self, job_id: str) -> Job:
        with self.sessions() as session:
            return session.get(Job, job_id)

    def used_s(self, user_id: str) -> float:
        with self.sessions() as session:
            return quotas.used_seconds(session, user_id)

    def close(self) -> None:
        self.engine.dispose()


def create_user(service: Service, plan: str = "basic") -> User:
    with service.sessions() as session:
        user = User(name=f"u{uuid.uuid4().hex[:10]}", plan=plan)
        session.add(user)
        session.commit()
        return user


def submit_job_row(service: Service, user: User, *, image: Path | None = None, audio: Path | None = None,
                   text: str | None = None, voice: Path | None = None, params: dict | None = None,
                   timeout_s: float | None = None, charged_s: float = 2.0, webhook_url: str | None = None,
                   enqueue_it: bool = True, raw: dict | None = None) -> str:
    """Store inputs, reserve `charged_s` of quota and insert a queued job; returns its id.

    `raw` (role → path) stores those files byte for byte as the API stores uploads (`*.upload`),
    instead of `image`/`audio`/`voice`, with `raw["limits"]` as the job's checked limits."""
    job_id = new_id()
    inputs: dict = {}
    if raw is not None:
        for role, path in raw.items():
            if role != "limits":
                inputs[role] = job_key(user.id, job_id, UPLOAD_NAMES[role])
                service.storage.put_file(inputs[role], Path(path))
        inputs["limits"] = dict(raw.get("limits") or {})
        image = audio = voice = None
    png = Path(service.settings.data_dir) / f".{job_id}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    if image is not None:
        Image.open(image).convert("RGB").save(png)
    for role, name, path in (("image", "image.png", png if image is not None else None),
                             ("audio", "audio.wav", audio), ("voice", "voice.wav", voice)):
        if path is not None:
            inputs[role] = job_key(user.id, job_id, name)
            service.storage.put_file(inputs[role], Path(path))
    png.unlink(missing_ok=True)
    if text is not None:
        inputs.update(text=text, lang="en")
    plan = plan_named(user.plan)
    with service.sessions() as session:
        day = quotas.reserve(session, user.id, plan, charged_s)
        session.add(Job(id=job_id, user_id=user.id, status="queued", priority=plan.priority,
                        kind="text" if text is not None else "audio", params=dict(FAST_PARAMS, **(params or {})),
                        inputs=inputs, charged_s=charged_s, charged_day=day,
                        timeout_s=timeout_s or service.settings.job_timeout_s, webhook_url=webhook_url))
        session.commit()
    if enqueue_it:
        enqueue(service.queue, job_id, plan.priority)
    return job_id


def wait_until(predicate, timeout_s: float, what: str, every_s: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes `mouthpiece worker` see `settings` (service/config.py reads it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOUTHPIECE_")}
    for name in ("data_dir", "database_url", "redis_url", "s3_endpoint", "s3_bucket", "s3_access_key",
                 "s3_secret_key", "s3_region", "secret_key", "lease_s", "max_attempts", "shutdown_grace_s",
                 "job_timeout_s", "trust_dir", "checkpoint_dir"):
        value = getattr(settings, name)
        if value is not None:
            env[f"MOUTHPIECE_{name.upper()}"] = str(value)
    return env


def start_worker(settings: Settings, log_path: Path, *, concurrency: int = 1) -> subprocess.Popen:
    """A real `mouthpiece worker` process (its own session, so a kill reaches only it)."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "mouthpiece.cli", "worker", "--concurrency", str(concurrency)],
            cwd=ROOT, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def stop_worker(process: subprocess.Popen, timeout_s: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def audit_records(settings: Settings, user_id: str) -> list[dict]:
    path = Path(settings.data_dir) / "audit.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("user") == user_id]


def make_canary_bundle(folder: Path) -> tuple[Path, Path]:
    """A second release of the shipped model (same weights, version 1.0.1-canary), signed by a
    fresh key; returns (bundle folder, trust folder holding that key)."""
    from safetensors.torch import load_file

    from mouthpiece.checkpoints import TrustStore, build_bundle, generate_keypair, sign_bundle
    from mouthpiece.motion.learned import DEFAULT_BUNDLE

    manifest = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())
    keys = generate_keypair(folder / "key")
    trust = folder / "trust"
    TrustStore(trust).add(keys.public_path)
    out = folder / "canary"
    build_bundle(out, load_file(str(DEFAULT_BUNDLE / "model.safetensors")),
                 json.loads((DEFAULT_BUNDLE / "config.json").read_text()),
                 architecture=manifest["architecture"], version="1.0.1-canary",
                 recipe={"command": ["tests"], "seed": 0, "data": {"source": "copy of motion-default"}},
                 name=manifest["id"])
    sign_bundle(out, keys.private_path)
    return out, trust
