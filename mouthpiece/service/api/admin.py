"""Admin routes (admin plan only; a user token gets 403): users, key revocation, canary routing."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from mouthpiece.checkpoints import CheckpointError, Registry
from mouthpiece.service import routing
from mouthpiece.service.api.deps import AdminUser, ServicesDep, SessionDep
from mouthpiece.service.api.responses import errors
from mouthpiece.service.db import ApiKey, User
from mouthpiece.service.errors import ApiError
from mouthpiece.service.schemas import (ApiKeyOut, CanaryOut, CanaryRequest, CreatedUser, CreateUserRequest,
                                        UserList, UserOut)
from mouthpiece.service.users import create_user, list_users, revoke_key
from mouthpiece.types import InputError

router = APIRouter(prefix="/v1/admin", tags=["admin"])
ADMIN_ERRORS = errors(401, 403)


def _key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(prefix=key.prefix, created_at=key.created_at, last_used_at=key.last_used_at,
                     revoked_at=key.revoked_at)


def _user_out(user: User, keys: list[ApiKey]) -> UserOut:
    return UserOut(id=user.id, name=user.name, plan=user.plan, created_at=user.created_at,
                   disabled_at=user.disabled_at, keys=[_key_out(k) for k in keys])


@router.get("/users", response_model=UserList, responses=ADMIN_ERRORS)
def users(_admin: AdminUser, session: SessionDep) -> UserList:
    """Every user with plan and API keys (prefixes only; keys are never stored)."""
    return UserList(users=[_user_out(user, keys) for user, keys in list_users(session)])


@router.post("/users", status_code=201, response_model=CreatedUser, responses=errors(401, 403, 409))
def new_user(body: CreateUserRequest, _admin: AdminUser, session: SessionDep) -> CreatedUser:
    """Create a user; the answer holds its API key, shown this once."""
    try:
        user, key = create_user(session, body.name, body.plan)
    except InputError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    session.commit()
    keys = session.execute(select(ApiKey).where(ApiKey.user_id == user.id)).scalars().all()
    return CreatedUser(user=_user_out(user, keys), api_key=key)


@router.post("/keys/{prefix}/revoke", response_model=ApiKeyOut, responses=errors(401, 403, 404))
def revoke(prefix: str, _admin: AdminUser, session: SessionDep) -> ApiKeyOut:
    """Revoke an API key by its public prefix: its access and refresh tokens stop working at once."""
    try:
        key = revoke_key(session, prefix)
    except InputError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    session.commit()
    return _key_out(key)


@router.get("/canary", response_model=CanaryOut, responses=ADMIN_ERRORS)
def canary(_admin: AdminUser, session: SessionDep) -> CanaryOut:
    """The canary checkpoint and the share of users routed to it (0 %: none)."""
    value = routing.get_canary(session) or {}
    return CanaryOut(ref=value.get("ref"), percent=int(value.get("percent", 0)))


@router.put("/canary", response_model=CanaryOut, responses=ADMIN_ERRORS)
def set_canary(body: CanaryRequest, _admin: AdminUser, services: ServicesDep, session: SessionDep) -> CanaryOut:
    """Route `percent` % of users (a stable hash of their id, so raising it only adds users) to
    the installed checkpoint `ref`; percent 0 turns the canary off."""
    if body.percent == 0:
        routing.clear_canary(session)
        return CanaryOut(ref=None, percent=0)
    settings = services.settings
    try:
        value = routing.set_canary(session, Registry(settings.registry_root, settings.trust_dir),
                                   body.ref, body.percent)
    except CheckpointError as exc:
        raise ApiError(422, "unknown_checkpoint", str(exc)) from None
    return CanaryOut(ref=value["ref"], percent=int(value["percent"]))
