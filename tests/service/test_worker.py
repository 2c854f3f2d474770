"""The job runner in this process: real engine runs in child processes, real SQLite and storage.

Covers success (exactly once), bad input, the per-job timeout, cancel of a running job and
graceful hand-back — each time checking that the engine child process (and its process group)
is really gone — plus webhooks and retention.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from mouthpiece.cli import main as cli_main
from mouthpiece.service import jobstore, webhooks
from mouthpiece.service import worker as worker_module
from mouthpiece.service.db import Job
from mouthpiece.service.queue import pending, take
from mouthpiece.service.retention import DAY_S, purge_expired
from mouthpiece.service.storage import job_prefix
from mouthpiece.service.worker import JobRunner
from tests.service.support import Service, audit_records, create_user, make_settings, submit_job_row, wait_until

ENGINE_WAIT_S = 240  # one short clip on two shared CPU cores, with slack for a loaded machine


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory) -> Path:
    """About 1.7 s of real speech (espeak-ng)."""
    path = tmp_path_factory.mktemp("speech") / "short.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), "Hello there, my friend."], check=True)
    return path


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory) -> Path:
    """About 6 s of real speech: long enough to act on a job while it renders."""
    path = tmp_path_factory.mktemp("speech") / "long.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path),
                    "Bob bought my big puppy a map. We met at the pool by the mall, and then we walked "
                    "home slowly along the river."], check=True)
    return path


@pytest.fixture(scope="module")
def aborted_job_speech(tmp_path_factory) -> Path:
    """About 20 s of real speech, for jobs stopped mid-way (timeout, cancel, shutdown): the
    engine takes ~0.25 s per second of it, and a cancel is noticed at the next heartbeat
    (≤ 1 s), so a 6 s clip could finish first."""
    path = tmp_path_factory.mktemp("speech") / "aborted.wav"
    text = ("Bob bought my big puppy a map. We met at the pool by the mall, and then we walked "
            "home slowly along the river. ")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text * 3], check=True)
    return path


@pytest.fixture
def service(tmp_path):
    service = Service(make_settings(tmp_path / "data"))
    yield service
    service.close()


@pytest.fixture
def runner(service):
    runner = JobRunner(service.settings)
    runner.prepare()
    yield runner
    runner.close()


def engine_pids(caplog) -> list[int]:
    return [r.pid for r in caplog.records if getattr(r, "pid", None) and "engine pid" in r.getMessage()]


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


def run_in_thread(runner, job_id) -> tuple[threading.Thread, list]:
    status: list = []
    thread = threading.Thread(target=lambda: status.append(runner.run(job_id)))
    thread.start()
    return thread, status


def test_a_job_runs_once_and_is_never_run_again(service, runner, portrait_path, short_speech, caplog):
    caplog.set_level(logging.INFO, logger="mouthpiece.service.worker")
    user = create_user(service)
    job_id = submit_job_row(service, user, image=portrait_path, audio=short_speech, charged_s=1.8)
    assert take(runner.queue) == job_id
    assert runner.run(job_id) == "succeeded"
    job = service.job(job_id)
    result = job.result
    assert (job.status, job.attempts, job.progress, job.lease_owner) == ("succeeded", 1, 1.0, None)
    assert result["frames"] == round(result["duration_s"] * 25) and result["resolution"] == [256, 256]
    assert result["checkpoint"]["route"] == "stable" and result["checkpoint"]["trusted"]
    assert result["checkpoint"]["sha256"] == job.checkpoint["sha256"]
    assert result["rtf"] == pytest.approx(result["compute_s"] / result["duration_s"], rel=0.01)
    names = [key.rsplit("/", 1)[1] for key in service.storage.list(job_prefix(user.id, job_id))]
    assert names == ["audio.wav", "image.png", "motion.json", "result.mp4"]
    import av

    with av.open(str(Path(service.settings.data_dir) / "storage" / result["video_key"])) as video:
        assert sum(1 for _ in video.decode(video=0)) == result["frames"]
    assert json.loads(Path(service.settings.data_dir, "storage", result["motion_key"]).read_text())
    records = audit_records(service.settings, user.id)
    assert [r["outcome"] for r in records] == ["succeeded"]
    assert records[0]["checkpoint"]["sha256"] == job.checkpoint["sha256"]
    assert service.used_s(user.id) == 1.8  # charged once, kept
    assert runner.run(job_id) == "skipped"  # a duplicate queue message never runs it again
    assert len(audit_records(service.settings, user.id)) == 1
    assert all(not group_alive(pid) for pid in engine_pids(caplog))


def _png_with_bad_pixels(path: Path) -> Path:
    """A PNG whose header and chunk checksums are right but whose pixel data is not zlib:
    it passes the API's header check and only a full decode finds the damage."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"not zlib at all" * 20)
                     + chunk(b"IEND", b""))
    return path


def _run_to_refunded_bad_input(service, runner, user, job_id: str) -> Job:
    """Run the job: it must fail as bad_input with its charge refunded; returns its row."""
    assert runner.run(job_id) == "failed"
    job = service.job(job_id)
    assert job.error_code == "bad_input", (job.error_code, job.error_message)
    assert job.refunded and service.used_s(user.id) == 0.0
    return job


def test_uploads_are_decoded_in_the_engine_child_before_the_engine_runs(service, runner, tmp_path,
                                                                        short_speech):
    """Uploads stored as they came: the header check passes this PNG, the worker's decode refuses
    it — the job fails as bad_input, is refunded, and its uploads are deleted."""
    from mouthpiece.service.intake import check_image

    bad = _png_with_bad_pixels(tmp_path / "bad.png")
    with open(bad, "rb") as handle:
        assert check_image(handle) == (256, 256)
    user = create_user(service)
    job_id = submit_job_row(service, user, raw={"image": bad, "audio": short_speech,
                                                "limits": {"audio_max_s": 60.0, "audio_s": 1.7}}, charged_s=1.8)
    job = _run_to_refunded_bad_input(service, runner, user, job_id)
    assert "image" in job.error_message, job.error_message
    assert service.storage.list(job_prefix(user.id, job_id)) == []


def test_speech_longer_than_its_checked_header_fails_as_bad_input(service, runner, portrait_path, short_speech):
    user = create_user(service)
    job_id = submit_job_row(service, user, raw={"image": portrait_path, "audio": short_speech,
                                                "limits": {"audio_max_s": 60.0, "audio_s": 0.5}}, charged_s=0.5)
    job = _run_to_refunded_bad_input(service, runner, user, job_id)
    assert "header says" in job.error_message, job.error_message


@pytest.mark.slow
def test_a_text_job_speaks_the_text_in_the_given_voice(service, runner, portrait_path, long_speech):
    user = create_user(service)
    job_id = submit_job_row(service, user, image=portrait_path, text="Hello there.", voice=long_speech,
                            charged_s=2.1)
    assert runner.run(job_id) == "succeeded", service.job(job_id).error_message
    result = service.job(job_id).result
    assert 0.5 < result["duration_s"] < 3.0 and result["frames"] == round(result["duration_s"] * 25)
    assert service.storage.exists(result["video_key"])
    assert [r["outcome"] for r in audit_records(service.settings, user.id)] == ["succeeded"]
    # reserved on an estimate (2.1 s), settled to the video it made
    assert service.job(job_id).charged_s == pytest.approx(result["duration_s"], abs=1e-3)
    assert service.used_s(user.id) == pytest.approx(result["duration_s"], abs=1e-3)


def test_bad_input_fails_the_job_and_refunds(service, runner, noise_image, short_speech):
    user = create_user(service)
    job_id = submit_job_row(service, user, image=noise_image, audio=short_speech, charged_s=1.8)
    job = _run_to_refunded_bad_input(service, runner, user, job_id)
    assert "face" in job.error_message.lower()
    assert not service.storage.exists(f"{job_prefix(user.id, job_id)}result.mp4")


def test_timeout_really_stops_the_engine(service, runner, portrait_path, aborted_job_speech, caplog):
    caplog.set_level(logging.INFO, logger="mouthpiece.service.worker")
    user = create_user(service)
    job_id = submit_job_row(service, user, image=portrait_path, audio=aborted_job_speech, timeout_s=1.5, charged_s=6)
    assert runner.run(job_id) == "failed"
    job = service.job(job_id)
    assert job.error_code == "timeout" and "1.5 s" in job.error_message
    assert job.refunded and service.used_s(user.id) == 0.0
    (pid,) = engine_pids(caplog)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert group_alive(pid) == []  # nothing the engine started survives either
    assert audit_records(service.settings, user.id) == []  # killed before it could finish


def test_cancel_stops_a_running_job(service, runner, portrait_path, aborted_job_speech, caplog):
    caplog.set_level(logging.INFO, logger="mouthpiece.service.worker")
    user = create_user(service)
    job_id = submit_job_row(service, user, image=portrait_path, audio=aborted_job_speech, charged_s=6)
    thread, status = run_in_thread(runner, job_id)
    try:
        wait_until(lambda: service.job(job_id).progress > 0.04, ENGINE_WAIT_S, "the job to be under way")
        (pid,) = engine_pids(caplog)
        assert group_alive(pid)
        with service.sessions() as session:
            assert jobstore.cancel(session, job_id) == "canceling"
    finally:
        thread.join(timeout=ENGINE_WAIT_S)
    assert status == ["canceled"]
    job = service.job(job_id)
    assert job.status == "canceled" and job.refunded and service.used_s(user.id) == 0.0
    assert group_alive(pid) == []
    assert not service.storage.exists(f"{job_prefix(user.id, job_id)}result.mp4")


def test_shutdown_hands_a_running_job_back(service, runner, portrait_path, aborted_job_speech, caplog):
    caplog.set_level(logging.INFO, logger="mouthpiece.service.worker")
    user = create_user(service)
    job_id = submit_job_row(service, user, image=portrait_path, audio=aborted_job_speech, charged_s=6,
                            enqueue_it=False)
    thread, status = run_in_thread(runner, job_id)
    try:
        wait_until(lambda: service.job(job_id).progress > 0.04, ENGINE_WAIT_S, "the job to be under way")
        runner.shutdown(0.0)
    finally:
        thread.join(timeout=ENGINE_WAIT_S)
    assert status == ["queued"]
    job = service.job(job_id)
    assert (job.status, job.attempts, job.lease_owner, job.refunded) == ("queued", 0, None, False)
    assert job.checkpoint is not None  # the retry will run the same checkpoint
    assert pending(runner.queue) == 1 and take(runner.queue) == job_id
    assert group_alive(engine_pids(caplog)[0]) == []
    assert service.used_s(user.id) == 6


class WebhookReceiver:
    """A loopback HTTP server that fails the first `failures` deliveries with 503."""

    def __init__(self, failures: int) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                code = 503 if len(receiver.received) <= receiver.failures else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_is_signed_and_retried(tmp_path, noise_image, short_speech):
    service = Service(make_settings(tmp_path / "data", webhook_allow_private=True))  # a loopback receiver
    runner = JobRunner(service.settings)
    runner.prepare()
    receiver = WebhookReceiver(failures=2)
    runner.resolve_host = lambda host, port: ["127.0.0.1"] if host == "hooks.example.test" else []
    try:
        user = create_user(service)
        named = receiver.url.replace("127.0.0.1", "hooks.example.test")  # resolved by the runner's resolver
        job_id = submit_job_row(service, user, image=noise_image, audio=short_speech, webhook_url=named)
        assert runner.run(job_id) == "failed"
        for thread in runner.webhook_threads:
            thread.join(timeout=30)
    finally:
        receiver.close()
        runner.close()
        service.close()
    assert len(receiver.received) == 3  # two 503s, then delivered
    headers, body = receiver.received[-1]
    assert headers["Host"] == f"hooks.example.test:{receiver.server.server_port}"
    secret = webhooks.webhook_secret(service.settings, user.id)
    assert webhooks.verify(secret, body, headers[webhooks.SIGNATURE_HEADER])
    assert not webhooks.verify(webhooks.webhook_secret(service.settings, "someone else"), body,
                               headers[webhooks.SIGNATURE_HEADER])
    assert not webhooks.verify(secret, body + b" ", headers[webhooks.SIGNATURE_HEADER])
    payload = json.loads(body)
    assert (payload["id"], payload["status"], payload["error"]["code"]) == (job_id, "failed", "bad_input")
    assert "video_key" not in json.dumps(payload)


def test_webhooks_to_private_addresses_are_refused_unless_allowed(service, runner, noise_image, short_speech):
    receiver = WebhookReceiver(failures=0)
    try:
        user = create_user(service)
        job_id = submit_job_row(service, user, image=noise_image, audio=short_speech, webhook_url=receiver.url)
        assert runner.run(job_id) == "failed"
        for thread in runner.webhook_threads:
            thread.join(timeout=30)
    finally:
        receiver.close()
    assert receiver.received == []  # loopback is not a public address
    assert not webhooks.target_allowed("http://user:pw@example.com/x", allow_private=True)
    assert not webhooks.target_allowed("file:///etc/passwd", allow_private=True)
    assert webhooks.target_allowed(receiver.url, allow_private=True)


def test_webhook_delivery_gives_up_on_client_errors_and_redirects():
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(self.path)
            self.send_response(302 if self.path == "/redirect" else 404)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for path in ("/redirect", "/gone"):
            assert not webhooks.deliver(base + path, b"{}", "sha256=x", allow_private=True, first_backoff_s=0.01)
    finally:
        server.shutdown()
        server.server_close()
    assert calls == ["/redirect", "/gone"]  # one try each, and the redirect was not followed


def test_retention_purges_old_files_and_keeps_rows(service, portrait_path, short_speech, capsys, monkeypatch):
    user = create_user(service)
    old, recent, waiting = (submit_job_row(service, user, image=portrait_path, audio=short_speech,
                                           enqueue_it=False) for _ in range(3))
    with service.sessions() as session:
        for job_id in (old, recent):
            jobstore.claim(session, job_id, "w", 30.0)
            jobstore.succeed(session, job_id, "w", {"video_key": "x"})
    retention_days = service.settings.retention_days
    with service.sessions() as session:
        session.get(Job, old).finished_at = time.time() - (retention_days + 1) * DAY_S
        session.get(Job, recent).finished_at = time.time() - 60
        session.commit()
        assert purge_expired(session, service.storage, retention_days=retention_days) == [old]
        assert purge_expired(session, service.storage, retention_days=retention_days) == []
    assert service.storage.list(job_prefix(user.id, old)) == []
    assert len(service.storage.list(job_prefix(user.id, recent))) == 2
    assert len(service.storage.list(job_prefix(user.id, waiting))) == 2  # queued: never purged
    purged = service.job(old)
    assert purged.purged_at > purged.finished_at and purged.status == "succeeded" and purged.result == {"video_key": "x"}

    # the command: `mouthpiece worker --cleanup` with retention 0 days purges the other finished job
    monkeypatch.setenv("MOUTHPIECE_RETENTION_DAYS", "0")
    assert cli_main(["worker", "--cleanup", "--json", "--data-dir", str(service.settings.data_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == {"purged": [recent], "retention_days": 0.0}
    assert service.storage.list(job_prefix(user.id, recent)) == []
    assert cli_main(["admin", "cleanup", "--json", "--data-dir", str(service.settings.data_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["purged"] == []  # nothing left to purge


def _report_loaded_decoders(sender) -> None:
    from mouthpiece.speech import decoders

    sender.send([load.cache_info().currsize for load in (decoders.word_recognizer,
                                                         decoders.word_aligner)])
    sender.close()


def test_engine_children_start_with_the_word_decoders_loaded():
    """The fork server loads them once (CHILD_PRELOAD), so a job does not pay the ~0.3 s."""
    context = worker_module._child_context()
    reader, sender = context.Pipe(duplex=False)
    child = context.Process(target=_report_loaded_decoders, args=(sender,))
    child.start()
    sender.close()
    assert reader.recv() == [1, 1]
    child.join(timeout=30)
    assert child.exitcode == 0
