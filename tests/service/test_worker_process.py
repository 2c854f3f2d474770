"""Real `mouthpiece worker` processes: SIGKILL mid-job (the job is retried and finished exactly
once, on the checkpoint it first chose) and graceful SIGTERM (the current job finishes, no new
one is taken)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from mouthpiece.checkpoints import Registry
from mouthpiece.service import routing
from mouthpiece.service.storage import job_prefix
from tests.service.support import (Service, audit_records, create_user, make_canary_bundle, make_settings,
                                   start_worker, stop_worker, submit_job_row, wait_until)
from tests.service.test_worker import group_alive

WAIT_S = 300  # worker start-up + one short clip, on two CPU cores shared with other work


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "short.wav"
    # ~7 s of speech: rendering lasts long enough that a kill "mid-render" lands before the
    # engine finishes (with a 1.5 s clip, a quiet machine finished between the poll and the kill)
    text = ("Hello there, my friend. We are going to read a few short sentences together, "
            "slowly and clearly, so that the video lasts a little while.")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    return make_canary_bundle(tmp_path_factory.mktemp("canary"))


def engine_pids(log_path: Path) -> dict[str, list[int]]:
    """job id → engine child pids, from a worker's JSON log lines."""
    found: dict[str, list[int]] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "engine pid" in entry.get("msg", ""):
            found.setdefault(entry["job_id"], []).append(entry["pid"])
    return found


def running_under(service: Service, job_ids: list[str], worker_pid: int, min_progress: float = 0.04):
    """The id of a job that worker `worker_pid` is rendering (past `min_progress`), if any."""
    for job_id in job_ids:
        job = service.job(job_id)
        if job.status == "running" and f":{worker_pid}:" in (job.lease_owner or "") and job.progress > min_progress:
            return job_id
    return None


def kill_mid_job(service: Service, settings, job_ids: list[str], log_path: Path) -> tuple[str, int]:
    """Start a worker, wait until it renders one of `job_ids`, SIGKILL it; → (job id, engine pid)."""
    worker = start_worker(settings, log_path)
    try:
        job_id = wait_until(lambda: running_under(service, job_ids, worker.pid), WAIT_S, "a job mid-render")
        engine_pid = engine_pids(log_path)[job_id][-1]
        assert group_alive(engine_pid)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # the engine child notices its worker is gone and takes its whole process group down
    wait_until(lambda: not group_alive(engine_pid), 20, "the killed worker's engine process to end")
    return job_id, engine_pid


def assert_finished_exactly_once(service: Service, users: dict[str, object], charged_s: float) -> None:
    for job_id, user in users.items():
        job = service.job(job_id)
        assert job.status == "succeeded", (job.status, job.error_code, job.error_message)
        outcomes = [r["outcome"] for r in audit_records(service.settings, user.id)]
        assert outcomes == ["succeeded"]  # the killed attempts never completed a generation
        assert service.used_s(user.id) == charged_s and not job.refunded  # charged once, never twice
        names = [k.rsplit("/", 1)[1] for k in service.storage.list(job_prefix(user.id, job_id))]
        assert names == ["audio.wav", "image.png", "motion.json", "result.mp4"]


def test_sigkilled_worker_job_is_retried_on_its_checkpoint_and_finished_once(tmp_path, portrait_path, speech,
                                                                             canary):
    bundle, trust = canary
    settings = make_settings(tmp_path / "data", trust_dir=trust)
    service = Service(settings)
    registry = Registry(settings.registry_root, trust)
    routing.ensure_stable(registry)
    registry.install(bundle)
    with service.sessions() as session:  # every user on the canary while the first attempt starts
        routing.set_canary(session, registry, "motion-audio2mouth@1.0.1-canary", 100)
    user = create_user(service)
    job_id = submit_job_row(service, user, image=portrait_path, audio=speech, charged_s=1.8)

    # two workers start together; whichever takes the job is killed mid-job, the other retries it
    workers = [start_worker(settings, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        victim = wait_until(lambda: next((w for w in workers if running_under(service, [job_id], w.pid)), None),
                            WAIT_S, "the job mid-render")
        engine_pid = engine_pids(tmp_path / f"worker-{workers.index(victim)}.log")[job_id][-1]
        assert service.job(job_id).checkpoint["route"] == "canary"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        wait_until(lambda: not group_alive(engine_pid), 20, "the killed worker's engine process to end")
        with service.sessions() as session:
            routing.clear_canary(session)  # withdrawn before the retry: the job keeps what it chose
        wait_until(lambda: service.job(job_id).status not in ("queued", "running"), WAIT_S, "the retry")
    finally:
        survivor_codes = [stop_worker(w) for w in workers if w.returncode is None]
    assert survivor_codes == [0]
    job = service.job(job_id)
    assert job.attempts == 2
    assert job.result["checkpoint"]["route"] == "canary"
    assert job.result["checkpoint"]["version"] == "1.0.1-canary"
    assert_finished_exactly_once(service, {job_id: user}, 1.8)
    service.close()


@pytest.mark.slow  # ~25 s here: a worker start-up plus one whole job
def test_sigterm_finishes_the_current_job_and_takes_no_new_one(tmp_path, portrait_path, speech):
    settings = make_settings(tmp_path / "data", shutdown_grace_s=WAIT_S)
    service = Service(settings)
    user = create_user(service, plan="premium")
    first = submit_job_row(service, user, image=portrait_path, audio=speech)
    second = submit_job_row(service, user, image=portrait_path, audio=speech)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        wait_until(lambda: running_under(service, [first], worker.pid), WAIT_S, "the first job mid-render")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=WAIT_S) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert service.job(first).status == "succeeded" and service.job(first).attempts == 1
    assert (service.job(second).status, service.job(second).attempts) == ("queued", 0)
    service.close()


@pytest.mark.slow
def test_ten_sigkills_mid_job_ten_jobs_finished_exactly_once(tmp_path, portrait_path, speech):
    """The issue's figure: kill -9 a worker mid-job 10 times → 10/10 jobs finish exactly once."""
    settings = make_settings(tmp_path / "data", max_attempts=20)
    service = Service(settings)
    users = {}
    for _ in range(10):
        user = create_user(service)
        users[submit_job_row(service, user, image=portrait_path, audio=speech, charged_s=1.8)] = user
    job_ids = list(users)
    kills = [kill_mid_job(service, settings, job_ids, tmp_path / f"killed-{i}.log") for i in range(10)]
    assert len(kills) == 10

    finisher = start_worker(settings, tmp_path / "finisher.log", concurrency=2)
    try:
        wait_until(lambda: all(service.job(j).status == "succeeded" for j in job_ids), 20 * WAIT_S,
                   "all ten jobs to finish")
    finally:
        assert stop_worker(finisher) == 0
    assert sum(service.job(j).attempts for j in job_ids) == 10 + 10  # one per kill + one success each
    assert_finished_exactly_once(service, users, 1.8)
    assert all(not group_alive(pid) for _, pid in kills)
    service.close()
