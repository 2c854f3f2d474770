"""GET /v1/me: the signed-in user's plan, today's quota and active jobs (for the web page)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from mouthpiece.service import quotas
from mouthpiece.service.api.deps import CurrentPlan, ServicesDep, Tenant
from mouthpiece.service.api.responses import errors
from mouthpiece.service.db import ACTIVE_STATUSES, Job
from mouthpiece.service.schemas import MeResponse, PlanOut, QuotaOut
from mouthpiece.service.webhooks import webhook_secret

router = APIRouter(prefix="/v1", tags=["account"])


@router.get("/me", response_model=MeResponse, responses=errors(401))
def me(tenant: Tenant, plan: CurrentPlan, services: ServicesDep) -> MeResponse:
    """Your account: plan limits, seconds of video used today, jobs queued or running."""
    user, session = tenant.user, tenant.session
    day = quotas.utc_day()
    used = quotas.used_seconds(session, user.id, day)
    active = session.execute(select(func.count()).select_from(
        tenant.jobs().where(Job.status.in_(ACTIVE_STATUSES)).subquery())).scalar_one()
    return MeResponse(
        id=user.id, name=user.name,
        plan=PlanOut(name=plan.name, max_duration_s=plan.max_duration_s, max_resolution=plan.max_resolution,
                     daily_video_s=plan.daily_video_s, concurrent_jobs=plan.concurrent_jobs),
        quota=QuotaOut(day=day, used_s=round(used, 3), limit_s=plan.daily_video_s,
                       remaining_s=round(max(0.0, plan.daily_video_s - used), 3)),
        active_jobs=active, webhook_secret=webhook_secret(services.settings, user.id))
