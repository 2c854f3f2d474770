"""A job's life on the jobs table: claim, heartbeat, succeed / fail / cancel, release, reap.

Every transition is one conditional UPDATE checked by its row count, so two workers can never
both run a job, a worker that lost its lease can never commit, a finished job is never run again,
and a job's quota is refunded at most once (`quotas.refund` flips `refunded`). Each function is
one transaction: it commits (or rolls back) before returning. Statuses: queued → running →
succeeded | failed | canceled; a running job whose lease expired goes back to queued (reap).

Times come from the database's clock (`db.db_now()`, inside each statement), not the worker's:
with workers on several hosts a skewed clock could otherwise make a lease look expired (the
reaper steals a live job) or never expire. `now=` (epoch seconds) replaces it in tests.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mouthpiece.service.db import Job, db_now
from mouthpiece.service.quotas import refund, settle

TERMINAL_STATUSES = ("succeeded", "failed", "canceled")
# error codes a failed job carries (also the `reason` label of failure metrics)
BAD_INPUT, INTERNAL, TIMEOUT, WORKER_LOST = "bad_input", "internal", "timeout", "worker_lost"


def _now(now: float | None):
    """The database's clock (an SQL expression), or the given time."""
    return db_now() if now is None else now


def _owned(job_id: str, owner: str):
    return (Job.id == job_id, Job.status == "running", Job.lease_owner == owner)


def claim(session: Session, job_id: str, owner: str, lease_s: float, *, max_attempts: int | None = None,
          now: float | None = None) -> Job | None:
    """Take `job_id` for `owner`: queued → running, or a running job whose lease expired.

    Counts an attempt; keeps `job.checkpoint` if an earlier attempt recorded one. Returns the
    claimed job, or None if it is finished, canceled, running under a live lease, or out of
    attempts.
    """
    now = _now(now)
    claimable = ((Job.status == "queued") | ((Job.status == "running") & (Job.lease_expires_at < now)))
    conditions = [Job.id == job_id, claimable, Job.cancel_requested.is_(False)]
    if max_attempts is not None:
        conditions.append(Job.attempts < max_attempts)
    try:
        done = session.execute(update(Job).where(*conditions).values(
            status="running", lease_owner=owner, lease_expires_at=now + lease_s, heartbeat_at=now,
            attempts=Job.attempts + 1, progress=0.0, started_at=func.coalesce(Job.started_at, now)))
        if done.rowcount != 1:
            session.rollback()
            return None
        job = session.execute(select(Job).where(Job.id == job_id).execution_options(
            populate_existing=True)).scalar_one()
        session.commit()
        return job
    except BaseException:
        session.rollback()
        raise


def heartbeat(session: Session, job_id: str, owner: str, lease_s: float, progress: float, *,
              now: float | None = None) -> bool:
    """Renew the lease and store progress (0..1). False if the lease is lost or a cancel was asked."""
    now = _now(now)
    return _commit(session, update(Job).where(*_owned(job_id, owner), Job.cancel_requested.is_(False))
                   .values(lease_expires_at=now + lease_s, heartbeat_at=now,
                           progress=min(max(float(progress), 0.0), 1.0)))


def set_checkpoint(session: Session, job_id: str, owner: str, checkpoint: dict) -> bool:
    """Record the checkpoint chosen at the first claim (the caller keeps an existing one)."""
    return _commit(session, update(Job).where(*_owned(job_id, owner)).values(checkpoint=checkpoint))


def succeed(session: Session, job_id: str, owner: str, result: dict, *, actual_s: float | None = None,
            now: float | None = None) -> bool:
    """Commit the result; False (nothing changed) if `owner` no longer holds the lease.

    With `actual_s` (the seconds of video really made, for a job charged on an estimate) the
    quota is settled to it in the same commit: only the one running → succeeded UPDATE of a
    job gets there, so a retried or zombie attempt never settles twice."""
    try:
        done = session.execute(update(Job).where(*_owned(job_id, owner)).values(
            status="succeeded", result=result, progress=1.0, finished_at=_now(now), lease_owner=None,
            lease_expires_at=None, error_code=None, error_message=None))
        if done.rowcount != 1:
            session.rollback()
            return False
        if actual_s is not None:
            settle(session, job_id, actual_s)
        session.commit()
        return True
    except BaseException:
        session.rollback()
        raise


def fail(session: Session, job_id: str, owner: str, code: str, message: str, *,
         now: float | None = None) -> bool:
    """Mark the job failed with `code` and refund its quota; False if the lease was lost."""
    return _finish(session, job_id, _owned(job_id, owner), "failed", now, error_code=code,
                   error_message=message[:2000])


def finish_canceled(session: Session, job_id: str, owner: str, *, now: float | None = None) -> bool:
    """The worker stopped a job whose cancel was asked: canceled + refund."""
    return _finish(session, job_id, _owned(job_id, owner), "canceled", now)


def release(session: Session, job_id: str, owner: str) -> bool:
    """Give a running job back to the queue (graceful shutdown); the attempt does not count."""
    return _commit(session, update(Job).where(*_owned(job_id, owner)).values(
        status="queued", lease_owner=None, lease_expires_at=None, attempts=Job.attempts - 1))


def cancel(session: Session, job_id: str, *, now: float | None = None) -> str:
    """Cancel a job: a queued one at once (refunded) → "canceled"; a running one is flagged and
    stopped by its worker within a heartbeat → "canceling"; a finished one is left as it is
    (its status is returned). Raises LookupError for an unknown id."""
    if _finish(session, job_id, (Job.id == job_id, Job.status == "queued"), "canceled", now):
        return "canceled"
    if _commit(session, update(Job).where(Job.id == job_id, Job.status == "running")
               .values(cancel_requested=True)):
        return "canceling"
    status = session.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    session.rollback()
    if status is None:
        raise LookupError(f"no job {job_id}")
    return status


def abandon(session: Session, job_id: str, code: str, message: str) -> bool:
    """Fail a job that never started (e.g. its inputs could not be stored after the row was
    committed); refunded in the same commit. False if it is no longer queued."""
    return _finish(session, job_id, (Job.id == job_id, Job.status == "queued"), "failed", None,
                   error_code=code, error_message=message)


def reap(session: Session, *, max_attempts: int, now: float | None = None) -> list[str]:
    """Deal with running jobs whose lease expired (their worker died or hung).

    Each goes back to the queue (its recorded checkpoint kept), or — when a cancel was asked —
    becomes canceled, or — after `max_attempts` attempts — fails with `worker_lost`; both refund.
    Returns the ids that must be enqueued again.
    """
    now = _now(now)
    expired = session.execute(select(Job.id, Job.lease_owner, Job.attempts, Job.cancel_requested)
                              .where(Job.status == "running", Job.lease_expires_at < now)).all()
    session.rollback()
    requeue = []
    for job_id, owner, attempts, cancel_requested in expired:
        still_expired = (Job.id == job_id, Job.status == "running", Job.lease_owner == owner,
                         Job.lease_expires_at < now)
        if cancel_requested:
            _finish(session, job_id, still_expired, "canceled", now)
        elif attempts >= max_attempts:
            _finish(session, job_id, still_expired, "failed", now, error_code=WORKER_LOST,
                    error_message=f"the job's worker stopped responding {attempts} times; giving up")
        elif _commit(session, update(Job).where(*still_expired).values(
                status="queued", lease_owner=None, lease_expires_at=None)):
            requeue.append(job_id)
    return requeue


def lost_queued(session: Session, *, older_than: float | None = None, min_age_s: float = 0.0) -> list[str]:
    """Queued jobs created before `older_than` (epoch s; default: `min_age_s` before the
    database's clock): candidates for a lost queue message. (`created_at` is the API host's
    clock; a skew only moves a harmless re-enqueue earlier or later — `claim` runs a job once.)"""
    cutoff = db_now() - min_age_s if older_than is None else older_than
    ids = list(session.execute(select(Job.id).where(Job.status == "queued", Job.created_at < cutoff)
                               .order_by(Job.priority.desc(), Job.created_at)).scalars())
    session.rollback()
    return ids


def priorities(session: Session, job_ids: list[str]) -> dict[str, int]:
    if not job_ids:
        return {}
    found = dict(session.execute(select(Job.id, Job.priority).where(Job.id.in_(job_ids))).all())
    session.rollback()
    return found


def _finish(session: Session, job_id: str, conditions, status: str, now: float | None, **values) -> bool:
    """Move matching rows to a terminal `status`; failures and cancels refund in the same commit."""
    try:
        done = session.execute(update(Job).where(*conditions).values(
            status=status, finished_at=_now(now), lease_owner=None, lease_expires_at=None, **values))
        if done.rowcount != 1:
            session.rollback()
            return False
        if status in ("failed", "canceled"):
            refund(session, job_id)
        session.commit()
        return True
    except BaseException:
        session.rollback()
        raise


def _commit(session: Session, statement) -> bool:
    try:
        done = session.execute(statement)
        if done.rowcount != 1:
            session.rollback()
            return False
        session.commit()
        return True
    except BaseException:
        session.rollback()
        raise
