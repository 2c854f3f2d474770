"""Typed dependencies shared by the routes: services, DB session, the signed-in user, the tenant scope.

Tenant isolation lives here, in one place: every read of jobs on behalf of a user goes through
`TenantScope`, whose queries always carry `user_id`; another tenant's id reads as 404.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mouthpiece.service.auth import AccessClaims, decode_access_token, unauthorized, user_for_access
from mouthpiece.service.db import Job, User
from mouthpiece.service.errors import ApiError
from mouthpiece.service.plans import Plan, plan_named
from mouthpiece.service.services import Services

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")

bearer_scheme = HTTPBearer(auto_error=False, description="access token from POST /v1/auth/token")


async def get_services(request: Request) -> Services:  # async: no thread hop for a lookup
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


# Closed as soon as the route function returns (not after a streamed response has been sent).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise unauthorized("sign in: send `Authorization: Bearer <token>`")
    return credentials.credentials


async def access_claims(credentials: BearerDep, services: ServicesDep) -> AccessClaims:
    """The claims of a validly signed, unexpired access token (401 otherwise), after the
    per-user rate limit (429). No database work: each route checks, in the same thread and
    connection as its own queries, that the key, sign-in and account are still valid
    (`user_for_access`)."""
    claims = decode_access_token(services.tokens, bearer_token(credentials), services.verified_tokens)
    if (refusal := services.throttle("user", claims.user_id)) is not None:
        raise refusal
    return claims


Claims = Annotated[AccessClaims, Depends(access_claims)]


def _load_user(services: Services, claims: AccessClaims) -> User:
    with services.engine.connect() as connection:
        return user_for_access(connection, claims)


async def current_user(claims: Claims, services: ServicesDep) -> User:
    """The user of a valid access token whose key, sign-in and account are not revoked (401).

    Uses its own short connection: a long upload must not hold one.
    """
    return await run_in_threadpool(_load_user, services, claims)


CurrentUser = Annotated[User, Depends(current_user)]


async def current_plan(user: CurrentUser) -> Plan:
    return plan_named(user.plan)


CurrentPlan = Annotated[Plan, Depends(current_plan)]


async def admin_user(user: CurrentUser) -> User:
    if not plan_named(user.plan).admin:
        raise ApiError(403, "forbidden", "this needs an admin account")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


async def metrics_reader(request: Request, credentials: BearerDep, services: ServicesDep) -> None:
    """Let through the scrape token (`metrics_token`) or an admin's access token: the metrics
    show every tenant's activity. 401 without a valid token, 403 for a non-admin user's.
    /metrics skips the per-IP limit (scrapes must not be starved), so a refused credential is
    charged to the caller's address here: guessing the token costs the guesser's bucket."""
    expected = services.settings.metrics_token
    if credentials is not None and expected and hmac.compare_digest(credentials.credentials.encode(),
                                                                    expected.encode()):
        return
    try:
        claims = decode_access_token(services.tokens, bearer_token(credentials), services.verified_tokens)
        user = await run_in_threadpool(_load_user, services, claims)
    except ApiError as exc:
        client = request.client.host if request.client else "unknown"
        raise services.throttle("ip", client) or exc from None
    if not plan_named(user.plan).admin:
        raise ApiError(403, "forbidden", "/metrics needs the metrics scrape token or an admin account")


MetricsReader = Depends(metrics_reader)


class TenantScope:
    """The signed-in user's slice of the jobs table."""

    def __init__(self, session: Session, user: User) -> None:
        self.session, self.user = session, user

    def jobs(self) -> Select:
        return select(Job).where(Job.user_id == self.user.id)

    def job(self, job_id: str) -> Job:
        """The user's job `job_id`; 404 for a malformed id, a missing one, or another tenant's."""
        row = None
        if JOB_ID_RE.match(job_id):
            row = self.session.execute(self.jobs().where(Job.id == job_id)).scalar_one_or_none()
        if row is None:
            raise ApiError(404, "not_found", "no such job in your account")
        return row


_OWNED_JOB = select(Job.__table__).where(Job.__table__.c.id == bindparam("job_id"),
                                         Job.__table__.c.user_id == bindparam("user_id"))


def owned_job_row(connection: Connection, user: User, job_id: str) -> Row:
    """The user's job `job_id` as a plain row (the status route's light path), with the same
    rule as `TenantScope.job`: 404 for a malformed id, a missing one, or another tenant's."""
    row = connection.execute(_OWNED_JOB, {"job_id": job_id, "user_id": user.id}).first() \
        if JOB_ID_RE.match(job_id) else None
    if row is None:
        raise ApiError(404, "not_found", "no such job in your account")
    return row


def tenant_scope(session: SessionDep, user: CurrentUser) -> TenantScope:
    return TenantScope(session, user)


Tenant = Annotated[TenantScope, Depends(tenant_scope)]
