"""The job queue: huey on SQLite (embedded) or on Redis (scaled), carrying job ids only.

huey does not acknowledge tasks: a message taken by a worker that dies is gone. That is fine
here because the jobs table is the source of truth — the reaper (worker.py) re-enqueues jobs
whose lease expired and queued jobs whose message was lost. A duplicate message is harmless:
`jobstore.claim` lets only one worker run a job, and never a finished one.
"""

from __future__ import annotations

import weakref

import huey

from mouthpiece.service.config import Settings

QUEUE_NAME = "mouthpiece"
TASK_NAME = "mouthpiece.run_job"

_RUN_JOB_TASKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # huey → its run_job task


def make_huey(settings: Settings) -> huey.Huey:
    """The queue for `settings`, with the `run_job` task registered; nothing is connected yet."""
    if settings.redis_url:
        queue = huey.PriorityRedisHuey(QUEUE_NAME, url=settings.redis_url, results=False, utc=True,
                                       blocking=True, read_timeout=1)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        queue = huey.SqliteHuey(QUEUE_NAME, filename=str(settings.data_dir / "queue.db"), results=False,
                                utc=True, timeout=30)

    @queue.task(name=TASK_NAME)
    def run_job_task(job_id: str) -> None:
        from mouthpiece.service.worker import run_job

        run_job(settings, job_id)

    _RUN_JOB_TASKS[queue] = run_job_task
    return queue


def enqueue(queue: huey.Huey, job_id: str, priority: int) -> None:
    """Queue `job_id`; higher `priority` is taken first (the plan's priority)."""
    queue.enqueue(_RUN_JOB_TASKS[queue].s(job_id, priority=int(priority)))


def take(queue: huey.Huey) -> str | None:
    """The next job id (highest priority first), or None when the queue is empty.

    With Redis this waits up to a second for a message; with SQLite it returns at once.
    """
    task = queue.dequeue()
    if task is None:
        return None
    return task.args[0]


def pending(queue: huey.Huey) -> int:
    """How many job messages wait in the queue."""
    return queue.pending_count()
