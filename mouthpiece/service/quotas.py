"""Daily seconds-of-video quota: reserved atomically at submit, refunded once on failure/cancel,
settled once on success when the reservation was an estimate (text jobs).

Reserve and refund are single conditional UPDATEs, so 20 racing submissions can never
over-spend and a job is never refunded twice, on SQLite and PostgreSQL alike. `settle` runs
in the same transaction as the job's one running → succeeded UPDATE (jobstore.succeed), which
is what makes it happen at most once.
"""

from __future__ import annotations

import functools
import time

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mouthpiece.service.db import Job, QuotaUsage, User
from mouthpiece.service.plans import Plan, plan_named


_UPSERTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


class QuotaExceeded(Exception):
    def __init__(self, used_s: float, limit_s: float, asked_s: float) -> None:
        super().__init__(f"daily video quota exceeded: {used_s:.1f} s of {limit_s:.0f} s used, "
                         f"this job needs {asked_s:.1f} s")
        self.used_s, self.limit_s, self.asked_s = used_s, limit_s, asked_s


def utc_day(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if at is None else at))


def reserve(session: Session, user_id: str, plan: Plan, seconds: float, *, day: str | None = None) -> str:
    """Add `seconds` to today's usage if it stays within the plan; return the day charged.

    One statement on SQLite and PostgreSQL: an upsert whose update only happens while the sum
    stays within the plan (no row changed → refused). Runs inside the caller's transaction:
    commit it together with the job row.
    """
    day = day or utc_day()
    if seconds > plan.daily_video_s:  # a fresh day's row is inserted unconditionally: check first
        raise QuotaExceeded(used_seconds(session, user_id, day), plan.daily_video_s, seconds)
    dialect = session.get_bind().dialect.name
    if dialect in _UPSERTS:
        added = session.execute(_reserve_upsert(dialect), {"user_id": user_id, "day": day, "seconds": seconds,
                                                           "limit_s": plan.daily_video_s}).first()
        if added is None:
            raise QuotaExceeded(used_seconds(session, user_id, day), plan.daily_video_s, seconds)
        return day
    try:
        with session.begin_nested():
            session.execute(insert(QuotaUsage).values(user_id=user_id, day=day, seconds=0.0))
    except IntegrityError:
        pass  # the row exists already
    done = session.execute(
        update(QuotaUsage)
        .where(QuotaUsage.user_id == user_id, QuotaUsage.day == day,
               QuotaUsage.seconds + seconds <= plan.daily_video_s)
        .values(seconds=QuotaUsage.seconds + seconds))
    if done.rowcount != 1:
        raise QuotaExceeded(used_seconds(session, user_id, day), plan.daily_video_s, seconds)
    return day


@functools.cache
def _reserve_upsert(dialect: str):
    """INSERT … ON CONFLICT DO UPDATE … WHERE within the limit, RETURNING (built once per dialect;
    RETURNING, not rowcount: drivers leave an upsert's rowcount unset, psycopg at -1)."""
    table = QuotaUsage.__table__
    statement = _UPSERTS[dialect](table).values(
        user_id=bindparam("user_id"), day=bindparam("day"), seconds=bindparam("seconds"))
    return statement.on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.day],
        set_={"seconds": table.c.seconds + statement.excluded.seconds},
        where=table.c.seconds + statement.excluded.seconds <= bindparam("limit_s"),
    ).returning(table.c.seconds)


def used_seconds(session: Session, user_id: str, day: str | None = None) -> float:
    return session.execute(select(QuotaUsage.seconds).where(
        QuotaUsage.user_id == user_id, QuotaUsage.day == (day or utc_day()))).scalar_one_or_none() or 0.0


def refund(session: Session, job_id: str) -> bool:
    """Give a failed/canceled job's seconds back, at most once (flips `jobs.refunded`)."""
    job = session.execute(select(Job.user_id, Job.charged_s, Job.charged_day)
                          .where(Job.id == job_id)).one_or_none()
    if job is None:
        return False
    flipped = session.execute(update(Job).where(Job.id == job_id, Job.refunded.is_(False))
                              .values(refunded=True))
    if flipped.rowcount != 1:
        return False
    session.execute(update(QuotaUsage)
                    .where(QuotaUsage.user_id == job.user_id, QuotaUsage.day == job.charged_day)
                    .values(seconds=QuotaUsage.seconds - job.charged_s))
    return True


def settle(session: Session, job_id: str, actual_s: float) -> float:
    """Correct a job's reserved seconds to the `actual_s` it produced; → the new `charged_s`.

    An over-estimate is given back; a shortfall is charged as far as the plan's daily limit
    allows (the rest is on the house: the job is done, and refusing it now would waste it).
    Runs inside the caller's transaction, after the write that makes this the job's only
    settlement (jobstore.succeed's conditional UPDATE), so the database's write lock (SQLite)
    or the quota row's lock (PostgreSQL, FOR UPDATE) orders it with racing reservations.
    """
    job = session.execute(select(Job.user_id, Job.charged_s, Job.charged_day, Job.refunded)
                          .where(Job.id == job_id)).one()
    actual_s = round(max(float(actual_s), 0.0), 3)
    if job.refunded or abs(actual_s - job.charged_s) < 1e-6:
        return job.charged_s
    usage = (QuotaUsage.user_id == job.user_id, QuotaUsage.day == job.charged_day)
    used = session.execute(select(QuotaUsage.seconds).where(*usage).with_for_update()).scalar_one_or_none()
    if used is None:
        return job.charged_s
    if actual_s < job.charged_s:
        change = actual_s - job.charged_s
    else:
        plan = plan_named(session.execute(select(User.plan).where(User.id == job.user_id)).scalar_one())
        change = max(min(actual_s - job.charged_s, plan.daily_video_s - used), 0.0)
    charged = round(job.charged_s + change, 3)
    session.execute(update(QuotaUsage).where(*usage).values(seconds=QuotaUsage.seconds + change))
    session.execute(update(Job).where(Job.id == job_id).values(charged_s=charged))
    return charged
