"""Typed dependencies shared by the routes: services, DB session, the signed-in user, the tenant scope.

Tenant isolation lives here, in one place: every read of jobs on behalf of a user goes through
`TenantScope`, whose queries always carry `user_id`; another tenant's id reads as 404.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mouthpiece.service.auth import decode_access_token, unauthorized, user_for_access
from mouthpiece.service.db import Job, User
from mouthpiece.service.errors import ApiError
from mouthpiece.service.plans import Plan, plan_named
from mouthpiece.service.ratelimit import retry_after_header
from mouthpiece.service.services import Services

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")

bearer_scheme = HTTPBearer(auto_error=False, description="access token from POST /v1/auth/token")


def get_services(request: Request) -> Services:
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


def current_user(credentials: BearerDep, services: ServicesDep) -> User:
    """The user of a valid access token (401 otherwise), after its per-user rate limit (429).

    Uses its own short session: a long upload must not hold a database connection.
    """
    claims = decode_access_token(services.tokens, bearer_token(credentials))
    with services.sessions() as session:
        user = user_for_access(session, claims)
    wait = services.limiter.hit(f"user:{user.id}", services.user_limit)
    if wait > 0:
        services.metrics.rate_limited.labels("user").inc()
        raise ApiError(429, "rate_limited", "too many requests; slow down", retry_after_header(wait))
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def current_plan(user: CurrentUser) -> Plan:
    return plan_named(user.plan)


CurrentPlan = Annotated[Plan, Depends(current_plan)]


def admin_user(user: CurrentUser) -> User:
    if not plan_named(user.plan).admin:
        raise ApiError(403, "forbidden", "this needs an admin account")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


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


def tenant_scope(session: SessionDep, user: CurrentUser) -> TenantScope:
    return TenantScope(session, user)


Tenant = Annotated[TenantScope, Depends(tenant_scope)]
