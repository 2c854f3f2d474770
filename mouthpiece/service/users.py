"""Accounts and their API keys (admin operations shared by the CLI and the admin API)."""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mouthpiece.service.auth import API_KEY_RE, new_api_key
from mouthpiece.service.db import ApiKey, RefreshToken, User, now
from mouthpiece.service.plans import PLANS
from mouthpiece.types import InputError

USER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_PREFIX_RE = re.compile(r"^[0-9a-f]{12}$")


def create_user(session: Session, name: str, plan: str) -> tuple[User, str]:
    """A new user with one API key; returns (user, plaintext key) — the key is never stored.

    Runs in the caller's transaction (commit it). Bad name/plan or a taken name → InputError.
    """
    if not USER_NAME_RE.match(name):
        raise InputError(f"user name {name!r} must be 1-64 characters of letters, digits, '.', '_', '-' "
                         "starting with a letter or digit")
    if plan not in PLANS:
        raise InputError(f"unknown plan {plan!r}; choose one of {', '.join(PLANS)}")
    if session.execute(select(User.id).where(User.name == name)).first() is not None:
        raise InputError(f"a user named {name!r} exists already; choose another name")
    user = User(name=name, plan=plan, created_at=now())
    session.add(user)
    session.flush()
    _, key = add_api_key(session, user)
    return user, key


def add_api_key(session: Session, user: User) -> tuple[ApiKey, str]:
    """Another API key for `user`; returns (row, plaintext key)."""
    key, prefix, key_hash = new_api_key()
    row = ApiKey(user_id=user.id, prefix=prefix, key_hash=key_hash, created_at=now())
    session.add(row)
    session.flush()
    return row, key


def key_prefix(key_or_prefix: str) -> str:
    """The public prefix from a whole key (`mp_<prefix>_…`) or the prefix itself."""
    match = API_KEY_RE.match(key_or_prefix)
    if match:
        return match.group(1)
    if KEY_PREFIX_RE.match(key_or_prefix):
        return key_or_prefix
    raise InputError("give an API key (mp_<prefix>_<secret>) or its 12-character hex prefix")


def revoke_key(session: Session, key_or_prefix: str) -> ApiKey:
    """Revoke an API key and every refresh token issued through it (its access tokens die with it).

    Revoking an already revoked key keeps the first revocation time. Unknown key → InputError.
    """
    prefix = key_prefix(key_or_prefix)
    row = session.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    if row is None:
        raise InputError(f"no API key with prefix {prefix}")
    at = now()
    session.execute(update(ApiKey).where(ApiKey.id == row.id, ApiKey.revoked_at.is_(None))
                    .values(revoked_at=at))
    session.execute(update(RefreshToken).where(RefreshToken.api_key_id == row.id,
                                               RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=at))
    session.refresh(row)
    return row


def list_users(session: Session) -> list[tuple[User, list[ApiKey]]]:
    """Every user (oldest first) with its API keys."""
    users = session.execute(select(User).order_by(User.created_at, User.id)).scalars().all()
    keys: dict[str, list[ApiKey]] = {}
    for key in session.execute(select(ApiKey).order_by(ApiKey.created_at)).scalars():
        keys.setdefault(key.user_id, []).append(key)
    return [(user, keys.get(user.id, [])) for user in users]
