"""`mouthpiece admin …` and `mouthpiece serve` as an operator runs them (real processes for serve)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mouthpiece.cli import main

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[3]


def _admin(capsys, *args) -> tuple[int, str, str]:
    code = main(["admin", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_user_prints_the_key_once_and_it_is_stored_hashed(capsys, tmp_path):
    data = str(tmp_path / "data")
    code, out, _ = _admin(capsys, "create-user", "dana", "--plan", "premium", "--data-dir", data, "--json")
    assert code == 0
    created = json.loads(out)
    assert {"user", "plan", "api_key"} <= set(created) and created["plan"] == "premium"
    assert created["api_key"].startswith("mp_")
    code, out, _ = _admin(capsys, "list-users", "--data-dir", data, "--json")
    listed = json.loads(out)["users"]
    assert [u["user"] for u in listed] == ["dana"]
    assert created["api_key"] not in out and listed[0]["keys"][0]["prefix"] == created["api_key"].split("_")[1]

    code, out, _ = _admin(capsys, "create-user", "erin", "--plan", "basic", "--data-dir", data)
    assert code == 0 and "API key (shown once" in out and "mp_" in out


@pytest.mark.parametrize("args, needle", [
    (["create-user", "dana", "--plan", "basic"], "exists already"),
    (["create-user", "../evil", "--plan", "basic"], "user name"),
    (["revoke-key", "nonsense"], "prefix"),
    (["revoke-key", "0123456789ab"], "no API key"),
    (["set-canary", "nope@1.0.0", "10"], "not installed"),
    (["set-canary", "stable", "101"], "0–100"),
])
def test_admin_refusals_exit_2_with_one_error_line(capsys, tmp_path, args, needle):
    data = str(tmp_path / "data")
    assert _admin(capsys, "create-user", "dana", "--plan", "basic", "--data-dir", data)[0] == 0
    code, _, err = _admin(capsys, *args, "--data-dir", data)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err


def test_revoke_key_by_key_or_prefix(capsys, tmp_path):
    data = str(tmp_path / "data")
    created = _admin(capsys, "create-user", "fay", "--plan", "basic", "--data-dir", data, "--json")[1]
    key = json.loads(created)["api_key"]
    code, out, _ = _admin(capsys, "revoke-key", key, "--data-dir", data, "--json")
    assert code == 0 and json.loads(out)["prefix"] == key.split("_")[1]
    listed = json.loads(_admin(capsys, "list-users", "--data-dir", data, "--json")[1])["users"]
    assert listed[0]["keys"][0]["revoked"] is True


def test_set_canary_on_an_installed_checkpoint(capsys, tmp_path):
    from mouthpiece.checkpoints import Registry
    from mouthpiece.service import routing
    from mouthpiece.service.config import Settings

    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    stable = routing.ensure_stable(Registry(settings.registry_root, settings.trust_dir))
    code, out, _ = _admin(capsys, "set-canary", stable, "30", "--data-dir", str(data), "--json")
    assert code == 0 and json.loads(out) == {"ref": stable, "percent": 30.0}
    code, out, _ = _admin(capsys, "set-canary", stable, "0", "--data-dir", str(data), "--json")
    assert code == 0 and json.loads(out) == {"ref": None, "percent": 0}


def _env(data: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOUTHPIECE_")}
    env.update({f"MOUTHPIECE_{k.upper()}": str(v) for k, v in extra.items()}, MOUTHPIECE_DATA_DIR=str(data))
    return env


def _serve(data: Path, log: Path, workers: int, **extra) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mouthpiece.cli", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT, env=_env(data, **extra), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"serve did not become ready:\n{log.read_text()}")


def _stop(process: subprocess.Popen, log: Path, timeout_s: float = 40) -> None:
    """SIGTERM, then a graceful exit (uvicorn re-raises the signal once it has shut down)."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log.read_text()


def test_serve_answers_logs_json_and_stops_on_sigterm(tmp_path):
    data, log = tmp_path / "data", tmp_path / "serve.log"
    process, url = _serve(data, log, workers=0)
    try:
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        response = httpx.get(url + "/v1/jobs")
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert httpx.get(url + "/openapi.json").json()["info"]["title"] == "mouthpiece"
    finally:
        _stop(process, log)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("route") == "/v1/jobs"]
    assert access and access[0]["status"] == 401 and access[0]["request_id"] == response.headers["x-request-id"]


def test_serve_with_two_api_processes_shares_rate_limits_and_metrics(tmp_path):
    """`serve --api-workers 2`: two API processes on one port; the per-IP bucket (burst 6) is
    one bucket for both, and /metrics adds up the requests of both — on the API port with the
    scrape token, and without one on the loopback-only metrics port."""
    data, log = tmp_path / "data", tmp_path / "serve.log"
    metrics_port = free_port()
    process, url = _serve(data, log, workers=0, api_workers=2, rate_per_ip=0.01, rate_burst_ip=6,
                          metrics_token="scrape-0123456789", metrics_port=metrics_port)
    try:
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        api = [pid for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
        assert len(api) == 2, children
        codes = []
        for _ in range(30):  # a new connection each time: the kernel hands them to either process
            with httpx.Client(timeout=10) as http:
                codes.append(http.get(url + "/v1/jobs").status_code)
        assert codes == [401] * 6 + [429] * 24  # one bucket of 6, not one per process
        time.sleep(0.5)  # let the processes flush their log lines
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        served_by = {e["pid"] for e in entries if e.get("path") == "/v1/jobs"}
        assert served_by == {int(pid) for pid in api}  # both processes took requests
        loopback = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        text = httpx.get(url + "/metrics", headers={"Authorization": "Bearer scrape-0123456789"}).text
        for scraped in (text, loopback):
            counted = sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                          if line.startswith("mouthpiece_http_requests_total{") and "/readyz" not in line)
            assert counted == 30, scraped  # the requests of both processes
    finally:
        _stop(process, log)


@pytest.mark.parametrize("value", ["0", "65"])
def test_serve_refuses_a_bad_api_worker_count(capsys, value):
    assert main(["serve", "--api-workers", value]) == 2
    assert "--api-workers" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--metrics-port", "0"], ["--metrics-port", "70000"],
                                  ["--port", "8123", "--metrics-port", "8123"]])
def test_serve_refuses_a_bad_metrics_port(capsys, args):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--metrics-port" in err


@pytest.mark.slow
def test_embedded_serve_runs_a_job_and_restarts_a_killed_worker(tmp_path, portrait_path, espeak_speech):
    """`mouthpiece serve` with one worker: a submitted job finishes and its signed link serves
    a real MP4; a SIGKILLed worker process is replaced and the next job finishes too."""
    from mouthpiece.media import probe_video

    data, log = tmp_path / "data", tmp_path / "serve.log"
    created = subprocess.run([sys.executable, "-m", "mouthpiece.cli", "admin", "create-user", "gina", "--plan",
                              "basic", "--json"], cwd=ROOT, env=_env(data), capture_output=True, text=True)
    key = json.loads(created.stdout)["api_key"]
    process, url = _serve(data, log, workers=1, lease_s=6)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            headers = {"Authorization": "Bearer " + http.post(
                "/v1/auth/token", headers={"Authorization": f"Bearer {key}"}).json()["access_token"]}

            def run_one() -> dict:
                files = {"image": ("p.jpg", portrait_path.read_bytes()), "audio": ("a.wav", espeak_speech.read_bytes())}
                job = http.post("/v1/jobs", headers=headers, files=files,
                                data={"min_resolution": "128", "full_frame": "false", "seed": "1"})
                assert job.status_code == 202, job.text
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    status = http.get(f"/v1/jobs/{job.json()['id']}", headers=headers).json()
                    if status["status"] in ("succeeded", "failed", "canceled"):
                        return status
                    time.sleep(1)
                raise AssertionError(f"job did not finish:\n{log.read_text()[-3000:]}")

            first = run_one()
            assert first["status"] == "succeeded", first
            video = tmp_path / "out.mp4"
            video.write_bytes(http.get(first["result"]["video_url"]).content)
            assert probe_video(video)["frames"] == first["result"]["frames"]

            children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
            workers = [pid for pid in children
                       if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
            assert len(workers) == 1, children
            os.kill(int(workers[0]), signal.SIGKILL)
            second = run_one()
            assert second["status"] == "succeeded", second
    finally:
        _stop(process, log)
