"""Checkpoint routing: every job runs on the registry's `stable` alias, or — for a stable
share of users set by an admin — on a `canary` checkpoint.

The canary is the service setting "canary" = {"ref": "<id>@<version>", "percent": 0..100}.
A user's bucket is sha256(user id) mod 100, fixed forever, and a user is on the canary when
bucket < percent: raising the percentage only ever adds users. The worker chooses at a job's
first claim and records {ref, sha256, route} in `job.checkpoint`; retries keep it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from mouthpiece.checkpoints import CheckpointError, Registry
from mouthpiece.checkpoints.canonical import sha256_hex
from mouthpiece.checkpoints.manifest import MANIFEST_NAME
from mouthpiece.service.db import Setting

log = logging.getLogger(__name__)

CANARY_SETTING = "canary"
STABLE_ALIAS = "stable"


def bucket(user_id: str) -> int:
    """The user's fixed bucket in 0..99."""
    return int.from_bytes(hashlib.sha256(user_id.encode()).digest(), "big") % 100


def route_for(user_id: str, canary: dict | None) -> str:
    """"canary" if the user's bucket is below the canary percentage, else "stable"."""
    if canary and bucket(user_id) < float(canary.get("percent", 0)):
        return "canary"
    return "stable"


def get_canary(session: Session) -> dict | None:
    value = session.execute(select(Setting.value).where(Setting.key == CANARY_SETTING)).scalar_one_or_none()
    return value or None


def set_canary(session: Session, registry: Registry, ref: str, percent: float) -> dict:
    """Route `percent` % of users to installed checkpoint `ref` (id@version or alias); commits."""
    if not 0 <= float(percent) <= 100:
        raise ValueError(f"percent must be within 0–100, got {percent}")
    resolved = registry.resolve(ref).name  # raises CheckpointError(not_found) if not installed
    value = {"ref": resolved, "percent": float(percent)}
    row = session.get(Setting, CANARY_SETTING)
    if row is None:
        session.add(Setting(key=CANARY_SETTING, value=value))
    else:
        row.value = value
    session.commit()
    return value


def clear_canary(session: Session) -> None:
    row = session.get(Setting, CANARY_SETTING)
    if row is not None:
        session.delete(row)
        session.commit()


def choose_checkpoint(session: Session, registry: Registry, user_id: str) -> dict:
    """{ref, sha256, route} for a new job of `user_id`; a canary that is gone falls back to stable."""
    canary = get_canary(session)
    route = route_for(user_id, canary)
    if route == "canary":
        try:
            return _describe(registry, canary["ref"], "canary")
        except CheckpointError as exc:
            log.warning("canary checkpoint %s unusable (%s); routing to stable", canary.get("ref"), exc)
    return _describe(registry, STABLE_ALIAS, "stable")


def checkpoint_path(registry: Registry, checkpoint: dict) -> Path:
    """Folder of a recorded checkpoint, refusing one whose manifest changed since it was recorded."""
    folder = registry.resolve(checkpoint["ref"])
    digest = sha256_hex((folder / MANIFEST_NAME).read_bytes())
    if digest != checkpoint["sha256"]:
        raise CheckpointError("conflict", f"checkpoint {checkpoint['ref']} changed since the job chose it")
    return folder


def ensure_stable(registry: Registry) -> str:
    """Install the shipped default bundle and alias it `stable` unless a stable alias exists."""
    aliases = registry.aliases()
    if STABLE_ALIAS in aliases:
        return aliases[STABLE_ALIAS]
    from mouthpiece.motion.learned import DEFAULT_BUNDLE

    report = registry.install(DEFAULT_BUNDLE)
    ref = f"{report.id}@{report.version}"
    if STABLE_ALIAS in registry.aliases():  # another process won the race: keep its choice
        return registry.aliases()[STABLE_ALIAS]
    return registry.set_alias(STABLE_ALIAS, ref)


def _describe(registry: Registry, ref: str, route: str) -> dict:
    folder = registry.resolve(ref)
    return {"ref": folder.name, "sha256": sha256_hex((folder / MANIFEST_NAME).read_bytes()), "route": route}
