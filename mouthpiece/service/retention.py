"""Retention: delete the stored inputs and results of jobs finished more than N days ago.

The job rows stay (history, quota and audit questions) with `purged_at` set; files are deleted
before the row is marked, so an interrupted clean-up is simply repeated by the next one. Run by
`mouthpiece admin cleanup` / `mouthpiece worker --cleanup` (once) and hourly by every running worker.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mouthpiece.service.config import Settings
from mouthpiece.service.db import Job, one_session
from mouthpiece.service.jobstore import TERMINAL_STATUSES
from mouthpiece.service.storage import Storage, job_prefix, make_storage

log = logging.getLogger(__name__)

DAY_S = 24 * 3600


def purge_expired(session: Session, storage: Storage, *, retention_days: float,
                  now: float | None = None) -> list[str]:
    """Delete the files of finished jobs older than `retention_days`; return the purged job ids."""
    now = time.time() if now is None else now
    cutoff = now - retention_days * DAY_S
    due = session.execute(select(Job.id, Job.user_id).where(
        Job.status.in_(TERMINAL_STATUSES), Job.finished_at < cutoff, Job.purged_at.is_(None))).all()
    session.rollback()
    purged = []
    for job_id, user_id in due:
        removed = storage.delete_prefix(job_prefix(user_id, job_id))
        session.execute(update(Job).where(Job.id == job_id, Job.purged_at.is_(None)).values(purged_at=now))
        session.commit()
        log.info("purged job %s (%d files)", job_id, removed, extra={"job_id": job_id})
        purged.append(job_id)
    return purged


def cleanup(settings: Settings) -> list[str]:
    """One clean-up pass on the service of `settings` (the command's entry point)."""
    with one_session(settings.db_url) as session:
        return purge_expired(session, make_storage(settings), retention_days=settings.retention_days)
