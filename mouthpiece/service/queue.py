"""The job queue: huey on SQLite (embedded) or on Redis (scaled), carrying job ids only.

huey does not acknowledge tasks: a message taken by a worker that dies is gone. That is fine
here because the jobs table is the source of truth — the reaper (worker.py) re-enqueues jobs
whose lease expired and queued jobs whose message was lost. A duplicate message is harmless:
`jobstore.claim` lets only one worker run a job, and never a finished one.
"""

from __future__ import annotations

import json
import re
import weakref

import huey
from huey.registry import Message
from huey.serializer import Serializer
from huey.storage import SqliteStorage

from mouthpiece.service.config import Settings

QUEUE_NAME = "mouthpiece"
TASK_NAME = "mouthpiece.run_job"

_RUN_JOB_TASKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # huey → its run_job task


_JOB_ID = re.compile(r"^[0-9a-f]{8,64}$")
_QUALIFIED_TASK_NAME = f"{__name__}.{TASK_NAME}"  # huey prefixes the defining module


class JobIdSerializer(Serializer):
    """JSON instead of huey's default pickle, accepting only `run_job(<hex id>)` messages.

    With pickle, anyone who can write to the queue (e.g. a shared Redis) could run code in the
    workers; here a message can at most name a job id, which the jobs table then checks.
    """

    def _serialize(self, data: Message) -> bytes:
        if not isinstance(data, Message):
            raise TypeError(f"the queue carries task messages only, not {type(data).__name__}")
        fields = data._asdict()
        return json.dumps(fields, allow_nan=False).encode()  # TypeError on anything but plain values

    def _deserialize(self, data: bytes) -> Message:
        fields = json.loads(data)
        if not isinstance(fields, dict) or set(fields) != set(Message._fields):
            raise ValueError("malformed queue message")
        args, kwargs = fields["args"], fields["kwargs"]
        if (fields["name"] != _QUALIFIED_TASK_NAME or not isinstance(args, list) or len(args) != 1
                or not isinstance(args[0], str) or not _JOB_ID.match(args[0]) or kwargs):
            raise ValueError("queue message is not run_job(<job id>)")
        fields["args"] = tuple(args)
        return Message(**fields)


class _SqliteQueueStorage(SqliteStorage):
    """huey's SQLite storage, WAL with synchronous=NORMAL like the service database (db.py):
    an enqueue no longer waits for a disk flush; a power cut may lose the last messages, which
    the worker's reaper re-queues from the jobs table."""

    def _create_connection(self):
        connection = super()._create_connection()
        connection.execute("pragma synchronous=NORMAL")
        return connection


class _SqliteHuey(huey.SqliteHuey):
    storage_class = _SqliteQueueStorage


def make_huey(settings: Settings) -> huey.Huey:
    """The queue for `settings`, with the `run_job` task registered; nothing is connected yet."""
    serializer = JobIdSerializer()
    if settings.redis_url:
        queue = huey.PriorityRedisHuey(QUEUE_NAME, url=settings.redis_url, results=False, utc=True,
                                       blocking=True, read_timeout=1, serializer=serializer)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        queue = _SqliteHuey(QUEUE_NAME, filename=str(settings.data_dir / "queue.db"), results=False,
                                utc=True, timeout=30, serializer=serializer)

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
