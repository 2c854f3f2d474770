"""Job execution: take job ids from the queue, run the engine in a child process, commit once.

One job, as `JobRunner.run` does it:
 1. claim it (conditional UPDATE; a finished job or one under a live lease is skipped);
 2. choose its checkpoint at the first claim (routing.py) — a retry keeps the recorded one;
 3. fetch its inputs from storage and run the engine in a child process of its own session,
    so the per-job timeout, a cancel or a lost lease kill the engine and everything it started;
 4. from claim to commit a lease thread renews the lease every lease_s/3 and stores progress;
 5. upload result.mp4 + motion.json (atomic writes), then commit — only while still holding the
    lease, so a worker that lost its lease never commits, and nothing is charged twice.

`run_worker` serves the queue with `concurrency` such runners, reaps expired leases (a SIGKILLed
worker's job is re-queued and finished by another), re-enqueues queued jobs whose queue message
was lost, purges expired files hourly, and shuts down gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mouthpiece.checkpoints import Registry
from mouthpiece.service import jobstore, routing, webhooks
from mouthpiece.service.config import Settings
from mouthpiece.service.db import Job, open_database
from mouthpiece.service.queue import enqueue, make_huey, pending, take
from mouthpiece.service.retention import purge_expired
from mouthpiece.service.storage import job_key, make_storage

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.25  # queue poll when it is empty (SQLite; Redis blocks up to 1 s itself)
PROGRESS_EVERY_S = 1.0  # progress reaches the table at most this often (lease renewals: lease_s / 3)
CLEANUP_EVERY_S = 3600.0
# modules the engine child needs, imported once by the fork server instead of per job; the
# last one loads the word decoders there too (a 13.8 s job: compute 3.66 → 3.53 s, median of 4)
CHILD_PRELOAD = ["mouthpiece.service.worker", "mouthpiece.engine", "mouthpiece.motion.learned", "torch",
                 "mouthpiece.speech.preload"]
# overall progress from the engine's (stage, fraction): speech and face set-up, then rendering
_STAGE_SPAN = {"speech": (0.02, 0.05), "face": (0.05, 0.10), "render": (0.10, 0.95)}
UPLOAD_PROGRESS = 0.97


@dataclass
class Outcome:
    kind: str  # succeeded | bad_input | internal | timeout | canceled | lost | released
    message: str = ""
    result: dict | None = None


def _child_context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(CHILD_PRELOAD)
    return context


class Lease:
    """Keeps a claimed job's lease alive from a thread (claim to commit), stores its progress,
    and notices a cancel request or the loss of the lease."""

    def __init__(self, sessions, job_id: str, owner: str, lease_s: float) -> None:
        self.sessions, self.job_id, self.owner, self.lease_s = sessions, job_id, owner, lease_s
        self.progress = 0.0  # set by the job's thread, written by the lease thread
        self.canceled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def broken(self) -> bool:
        return self.canceled.is_set() or self.lost.is_set()

    def _renew(self) -> None:
        last, sent = time.monotonic(), self.progress
        with self.sessions() as session:
            while not self._stop.wait(IDLE_POLL_S):
                now, progress = time.monotonic(), self.progress
                if now - last < self.lease_s / 3 and (progress == sent or now - last < PROGRESS_EVERY_S):
                    continue
                try:
                    kept = jobstore.heartbeat(session, self.job_id, self.owner, self.lease_s, progress)
                except Exception as exc:  # a database hiccup: keep trying; the lease decides
                    log.warning("job %s: heartbeat failed: %s", self.job_id, exc, extra={"job_id": self.job_id})
                    continue
                last, sent = now, progress
                if not kept:
                    job = session.get(Job, self.job_id, populate_existing=True)
                    session.rollback()
                    asked = job is not None and job.cancel_requested and job.lease_owner == self.owner
                    (self.canceled if asked else self.lost).set()
                    return


class JobRunner:
    """Runs jobs of one worker process; thread-safe (one session per job)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine, self.sessions = open_database(settings.db_url)
        self.storage = make_storage(settings)
        self.queue = make_huey(settings)
        self.registry = Registry(settings.registry_root, settings.trust_dir)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self._grace_deadline = float("inf")
        self._context = _child_context()
        self.webhook_threads: list[threading.Thread] = []
        self.resolve_host: webhooks.Resolver = webhooks.system_resolver  # (tests replace it)

    def prepare(self) -> None:
        """Make sure `stable` exists and warm the engine fork server up before taking work."""
        routing.ensure_stable(self.registry)
        warm_up = self._context.Process(target=_noop, name="mouthpiece-warm-up")
        warm_up.start()  # returns once the fork server has imported CHILD_PRELOAD
        warm_up.join()

    def shutdown(self, grace_s: float) -> None:
        """Stop taking work; running jobs may finish within `grace_s`, then are handed back."""
        self._grace_deadline = min(self._grace_deadline, time.monotonic() + grace_s)
        self.stopping.set()

    def close(self) -> None:
        self.engine.dispose()

    # -- one job ---------------------------------------------------------------------------------

    def run(self, job_id: str) -> str:
        """Run `job_id` if it can be claimed; return its status afterwards ("skipped" if not claimed)."""
        owner = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        settings = self.settings
        with self.sessions() as session:
            job = jobstore.claim(session, job_id, owner, settings.lease_s, max_attempts=settings.max_attempts)
            if job is None:
                return "skipped"
            log.info("job %s claimed (attempt %d)", job_id, job.attempts,
                     extra={"job_id": job_id, "owner": owner, "attempt": job.attempts})
            try:
                with Lease(self.sessions, job_id, owner, settings.lease_s) as lease, \
                        tempfile.TemporaryDirectory(prefix=f"mouthpiece-job-{job_id[:8]}-") as tmp:
                    checkpoint = job.checkpoint or self._choose_checkpoint(session, job, owner)
                    spec = self._child_spec(job, checkpoint, Path(tmp))
                    outcome = self._execute(job, spec, lease)
                    if outcome.kind == "succeeded":
                        outcome = self._upload(job, outcome, checkpoint, Path(tmp), lease)
                status = self._commit(session, job, owner, outcome)
            except Exception as exc:  # our own failure (storage, registry…): the job fails, refunded
                log.exception("job %s failed in the worker", job_id, extra={"job_id": job_id})
                jobstore.fail(session, job_id, owner, jobstore.INTERNAL, f"{type(exc).__name__}: {exc}")
                status = "failed"
            final = session.get(Job, job_id, populate_existing=True)
            if status in jobstore.TERMINAL_STATUSES and final is not None and final.status == status:
                thread = webhooks.notify(settings, final, resolve=self.resolve_host)
                if thread is not None:
                    self.webhook_threads.append(thread)
            return status

    def _choose_checkpoint(self, session, job: Job, owner: str) -> dict:
        checkpoint = routing.choose_checkpoint(session, self.registry, job.user_id)
        jobstore.set_checkpoint(session, job.id, owner, checkpoint)
        return checkpoint

    def _child_spec(self, job: Job, checkpoint: dict, tmp: Path) -> dict:
        """Fetch the inputs and describe the engine call (paths only: the child needs no storage)."""
        inputs = {}
        for role in ("image", "audio", "voice"):
            key = job.inputs.get(role)
            if key:
                inputs[role] = str(tmp / Path(key).name)
                self.storage.fetch(key, Path(inputs[role]))
        return {
            "kind": job.kind, "inputs": inputs, "text": job.inputs.get("text"),
            "lang": job.inputs.get("lang", "en"), "params": dict(job.params or {}),
            "limits": dict(job.inputs.get("limits") or {}),
            "out": str(tmp / "result.mp4"), "motion_out": str(tmp / "motion.json"),
            "audit_log": str(self.settings.data_dir / "audit.jsonl"), "user": job.user_id,
            "checkpoint": str(routing.checkpoint_path(self.registry, checkpoint)),
            "trust_dir": str(self.settings.trust_dir) if self.settings.trust_dir else None,
        }

    def _execute(self, job: Job, spec: dict, lease: Lease) -> Outcome:
        """Run the engine child and watch it: progress, timeout, cancel, lost lease, shutdown."""
        receiver, sender = self._context.Pipe(duplex=False)
        lifeline_reader, lifeline_writer = self._context.Pipe(duplex=False)
        child = self._context.Process(target=_engine_child, args=(spec, sender, lifeline_reader),
                                      name=f"mouthpiece-engine-{job.id[:8]}")
        child.start()
        sender.close()
        lifeline_reader.close()
        log.info("job %s: engine pid %s", job.id, child.pid, extra={"job_id": job.id, "pid": child.pid})
        timeout_s = job.timeout_s or self.settings.job_timeout_s
        started = time.monotonic()
        try:
            while True:
                ready = multiprocessing.connection.wait([receiver, child.sentinel], timeout=IDLE_POLL_S)
                if receiver in ready:
                    try:
                        message = receiver.recv()
                    except EOFError:  # the child closed its end without a result: it is dying
                        child.join(timeout=5)
                        return Outcome(jobstore.INTERNAL, "the engine process ended without a result "
                                                          f"(exit code {child.exitcode})")
                    if message[0] != "progress":
                        return Outcome(*message)
                    lease.progress = message[1]
                elif child.sentinel in ready:
                    child.join()
                    return Outcome(jobstore.INTERNAL, f"the engine process died (exit code {child.exitcode})")
                if time.monotonic() - started >= timeout_s:
                    return Outcome(jobstore.TIMEOUT, f"the job ran longer than its {timeout_s:g} s limit "
                                                     "and was stopped")
                if lease.canceled.is_set():
                    return Outcome("canceled")
                if lease.lost.is_set():
                    return Outcome("lost", "the lease was lost")
                if self.stopping.is_set() and time.monotonic() >= self._grace_deadline:
                    return Outcome("released")
        finally:
            _kill_group(child)
            receiver.close()
            lifeline_writer.close()

    def _upload(self, job: Job, outcome: Outcome, checkpoint: dict, tmp: Path, lease: Lease) -> Outcome:
        """Store result.mp4 + motion.json (atomic writes) while the lease is still ours."""
        if lease.broken:  # canceled meanwhile, or the lease went to another attempt
            return Outcome("canceled") if lease.canceled.is_set() else Outcome("lost", "the lease was lost")
        lease.progress = UPLOAD_PROGRESS
        video_key = job_key(job.user_id, job.id, "result.mp4")
        motion_key = job_key(job.user_id, job.id, "motion.json")
        self.storage.put_file(video_key, tmp / "result.mp4")
        self.storage.put_file(motion_key, tmp / "motion.json")
        return Outcome("succeeded", result=_result_record(outcome.result, checkpoint, video_key, motion_key))

    def _commit(self, session, job: Job, owner: str, outcome: Outcome) -> str:
        """Store the outcome: succeed, fail (refund), cancel (refund), release, or nothing (lost)."""
        job_id = job.id
        extra = {"job_id": job_id, "outcome": outcome.kind}
        if outcome.kind == "succeeded":
            # a text job was charged on an estimate of its speech: settle to the video made
            actual_s = outcome.result["duration_s"] if job.kind == "text" else None
            if jobstore.succeed(session, job_id, owner, outcome.result, actual_s=actual_s):
                log.info("job %s succeeded", job_id, extra={**extra, "compute_s": outcome.result["compute_s"]})
                return "succeeded"
            log.warning("job %s: lease lost before commit; another attempt owns it", job_id, extra=extra)
            return "lost"
        if outcome.kind in (jobstore.BAD_INPUT, jobstore.INTERNAL, jobstore.TIMEOUT):
            if outcome.kind == jobstore.INTERNAL:
                log.error("job %s: engine failure: %s", job_id, outcome.message, extra=extra)
            else:
                log.info("job %s failed: %s", job_id, outcome.message, extra=extra)
            if not jobstore.fail(session, job_id, owner, outcome.kind, outcome.message):
                return "lost"
            if outcome.kind == jobstore.BAD_INPUT:
                self._drop_inputs(job)
            return "failed"
        if outcome.kind == "canceled":
            log.info("job %s canceled", job_id, extra=extra)
            return "canceled" if jobstore.finish_canceled(session, job_id, owner) else "lost"
        if outcome.kind == "released":
            if jobstore.release(session, job_id, owner):
                enqueue(self.queue, job_id, job.priority)
                log.info("job %s handed back to the queue (shutdown)", job_id, extra=extra)
            return "queued"
        log.warning("job %s: %s; left to its new owner", job_id, outcome.message, extra=extra)
        return "lost"

    def _drop_inputs(self, job: Job) -> None:
        """Delete the stored uploads of a job refused for bad input (they are never used)."""
        for role in ("image", "audio", "voice"):
            key = job.inputs.get(role)
            if key:
                try:
                    self.storage.delete(key)
                except Exception as exc:  # retention removes them later anyway
                    log.warning("job %s: could not delete %s: %s", job.id, role, exc, extra={"job_id": job.id})

    # -- the worker loops ------------------------------------------------------------------------

    def serve_queue(self) -> None:
        """Take job ids and run them until shutdown."""
        while not self.stopping.is_set():
            try:
                job_id = take(self.queue)
            except Exception as exc:  # the queue backend is down: wait and retry
                log.warning("queue unavailable: %s", exc)
                self.stopping.wait(1.0)
                continue
            if job_id is None:
                if not self.settings.redis_url:
                    self.stopping.wait(IDLE_POLL_S)
                continue
            if self.stopping.is_set():  # taken while shutting down: put it back untouched
                self._enqueue_again([job_id])
                break
            self.run(job_id)

    def _enqueue_again(self, job_ids: list[str]) -> None:
        with self.sessions() as session:
            for job_id, priority in jobstore.priorities(session, job_ids).items():
                enqueue(self.queue, job_id, priority)

    def reap_once(self) -> list[str]:
        """Re-queue jobs whose lease expired, and queued jobs whose message was lost."""
        with self.sessions() as session:  # lease expiry on the database's clock, not this host's
            requeued = jobstore.reap(session, max_attempts=self.settings.max_attempts)
            if pending(self.queue) == 0:  # jobs queued in the table but not in the queue were lost
                lost = jobstore.lost_queued(session, min_age_s=max(10.0, 2 * self.settings.lease_s))
                requeued += [job_id for job_id in lost if job_id not in requeued]
        self._enqueue_again(requeued)
        if requeued:
            log.info("re-queued %d job(s)", len(requeued), extra={"job_ids": requeued})
        return requeued

    def cleanup_once(self) -> list[str]:
        """Delete the files of jobs past retention (service/retention.py)."""
        with self.sessions() as session:
            return purge_expired(session, self.storage, retention_days=self.settings.retention_days)


def run_job(settings: Settings, job_id: str) -> str:
    """Run one job in this process (the huey task body; `mouthpiece worker` reuses one runner)."""
    runner = JobRunner(settings)
    try:
        runner.prepare()
        return runner.run(job_id)
    finally:
        runner.close()


def run_worker(settings: Settings, *, concurrency: int = 1) -> None:
    """Serve the queue with `concurrency` jobs at a time until SIGTERM/SIGINT.

    The first signal stops taking work and lets running jobs finish for
    `settings.shutdown_grace_s`, after which they are handed back to the queue; a second
    signal hands them back at once.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be ≥ 1")
    runner = JobRunner(settings)
    runner.prepare()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame) -> None:
            grace = 0.0 if runner.stopping.is_set() else settings.shutdown_grace_s
            log.info("signal %d: shutting down (grace %.0f s)", signum, grace)
            runner.shutdown(grace)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    threads = [threading.Thread(target=runner.serve_queue, name=f"mouthpiece-runner-{i}")
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    log.info("worker %s serving (concurrency %d)", runner.worker_id, concurrency)
    reap_every = max(0.5, settings.lease_s / 2)
    next_cleanup = time.monotonic()
    try:
        while not runner.stopping.is_set():
            try:
                runner.reap_once()
                if time.monotonic() >= next_cleanup:
                    runner.cleanup_once()
                    next_cleanup = time.monotonic() + CLEANUP_EVERY_S
            except Exception:
                log.exception("reaper pass failed")
            runner.stopping.wait(reap_every)
    finally:
        runner.shutdown(settings.shutdown_grace_s)
        for thread in threads:
            thread.join()
        for thread in runner.webhook_threads:
            thread.join(timeout=5)
        runner.close()
        log.info("worker %s stopped", runner.worker_id)


def _result_record(engine_result: dict, checkpoint: dict, video_key: str, motion_key: str) -> dict:
    """job.result: what the API shows, plus the storage keys of the files."""
    return {
        "video_key": video_key, "motion_key": motion_key,
        "frames": engine_result["frames"], "fps": engine_result["fps"],
        "duration_s": engine_result["duration_s"], "compute_s": engine_result["compute_s"],
        "rtf": engine_result["rtf"], "resolution": engine_result["resolution"],
        "checkpoint": {**engine_result["checkpoint"], "ref": checkpoint["ref"], "route": checkpoint["route"]},
        "warnings": engine_result["warnings"],
    }


def _kill_group(child: multiprocessing.Process) -> None:
    """Kill the engine child and everything it started (its own process group), then reap it."""
    if child.pid is not None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already
    if child.is_alive():
        child.kill()
    child.join(timeout=10)


# -- the engine child ----------------------------------------------------------------------------

def _noop() -> None:
    """A child that does nothing: starting it waits for the fork server to be ready."""


def _engine_child(spec: dict, sender, lifeline) -> None:
    """Child process: run the engine for one job and send ("progress", f)… then the outcome."""
    os.setsid()  # its own process group: the worker can kill it and the workers it starts at once
    threading.Thread(target=_die_with_worker, args=(lifeline,), daemon=True).start()
    from mouthpiece.types import InputError

    def progress(stage: str, fraction: float) -> None:
        lo, hi = _STAGE_SPAN.get(stage, (0.0, 0.0))
        sender.send(("progress", lo + (hi - lo) * min(max(fraction, 0.0), 1.0)))

    try:
        result = _generate(spec, progress)
        sender.send(("succeeded", "", result))
    except InputError as exc:
        sender.send((jobstore.BAD_INPUT, str(exc)))
    except Exception as exc:  # reported to the worker, which fails the job as "internal"
        logging.getLogger(__name__).exception("engine failure")
        sender.send((jobstore.INTERNAL, f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()


def _die_with_worker(lifeline) -> None:
    """Kill this process group when the worker goes away (its end of the lifeline closes)."""
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os.killpg(0, signal.SIGKILL)


def _generate(spec: dict, progress) -> dict:
    from mouthpiece.engine import generate, generate_from_text
    from mouthpiece.params import GenerationParams

    known = GenerationParams.__dataclass_fields__
    # Service jobs always run the learned model of their routed checkpoint (stable or canary).
    params = GenerationParams(**{k: v for k, v in spec["params"].items() if k in known and k != "motion"},
                              motion="model")
    options = dict(motion_out=spec["motion_out"], progress=progress, audit_log=spec["audit_log"],
                   user=spec["user"], checkpoint=spec["checkpoint"], trust_dir=spec["trust_dir"])
    from mouthpiece.service.intake import clean_inputs

    # Uploads are stored as they came: decode and re-encode them here, in the killable child,
    # before the engine reads anything (InputError → the job fails as bad_input, refunded).
    inputs = clean_inputs(spec["inputs"], spec["limits"], Path(spec["out"]).parent)
    if spec["kind"] == "text":
        result = generate_from_text(inputs["image"], spec["text"], spec["out"], params, lang=spec["lang"],
                                    voice=inputs.get("voice"), **options)
    else:
        result = generate(inputs["image"], inputs["audio"], spec["out"], params, **options)
    return result.to_json()
