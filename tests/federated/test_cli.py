"""`mouthpiece fl …` end to end: client (opt-in, personal checkpoint), simulate, publish."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading

import pytest

CLI = [sys.executable, "-m", "mouthpiece.cli"]


def run(*args, timeout=600) -> subprocess.CompletedProcess:
    """The CLI in its own process (as a user runs it)."""
    import os

    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, FLWR_TELEMETRY_ENABLED="0"))


def cli(capsys, *args) -> subprocess.CompletedProcess:
    """The CLI's main() in this process (fast: nothing is imported twice)."""
    from mouthpiece.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def assert_input_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error:") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


class Listener:
    """A TCP port on loopback that counts the connections made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port, self.accepted, self.stop = self.sock.getsockname()[1], 0, False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def test_client_without_opt_in_keeps_a_signed_personal_checkpoint_and_never_connects(
        tmp_path, data_dir, talking_video, capsys):
    videos = tmp_path / "my-videos"
    videos.mkdir()
    shutil.copy(talking_video, videos / "me.mp4")
    key = tmp_path / "my-key"
    assert cli(capsys, "ckpt", "keygen", "--out", key).returncode == 0
    listener = Listener()
    try:
        proc = cli(capsys, "fl", "client", "--videos", videos, "--superlink", f"127.0.0.1:{listener.port}",
                   "--keep-local", tmp_path / "personal", "--key", key / "private.pem",
                   "--epochs", 2, "--data-dir", data_dir, "--work-dir", tmp_path / "private",
                   "--json")
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stderr
    assert listener.accepted == 0  # no --opt-in: not even a connection attempt
    assert "not joining" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["joined"] is False and out["data"]["frames"] == 50
    assert (tmp_path / "private" / "client-data.npz").stat().st_mode & 0o077 == 0  # owner only

    from mouthpiece.checkpoints import TrustStore, load_bundle, verify_bundle

    trust = tmp_path / "my-trust"
    TrustStore(trust).add(key / "public.pub")
    personal = load_bundle(tmp_path / "personal", trust)
    assert personal.trusted and personal.version == "1.0.0-personal"
    assert personal.manifest["parent"]["sha256"] == out["base"]["sha256"]
    assert personal.manifest["recipe"]["data"]["frames"] == 50
    signers = verify_bundle(tmp_path / "personal", trust).signers
    assert [s["key_id"] for s in signers] == [out["personal"]["key_id"]]


def test_client_and_server_refuse_bad_requests(tmp_path, data_dir, capsys):
    videos = tmp_path / "empty"
    videos.mkdir()
    assert_input_error(cli(capsys, "fl", "client", "--videos", videos, "--opt-in", "--data-dir", data_dir),
                       "--superlink")
    assert_input_error(cli(capsys, "fl", "client", "--videos", videos, "--keep-local", tmp_path / "x",
                           "--data-dir", data_dir), "--key")
    assert_input_error(cli(capsys, "fl", "client", "--videos", videos, "--data-dir", data_dir),
                       "no videos")
    assert_input_error(cli(capsys, "fl", "server", "--superlink", "127.0.0.1:1", "--insecure", "--key",
                           tmp_path / "nokey.pem", "--rounds", 1, "--data-dir", data_dir),
                       "signing key")
    assert_input_error(cli(capsys, "fl", "server", "--superlink", "127.0.0.1:1", "--key", "k",
                           "--rounds", 1, "--data-dir", data_dir), "--root-certificates")
    assert_input_error(cli(capsys, "fl", "publish", "--ref", "motion-tiny-fed@9.9.0", "--data-dir",
                           data_dir), "not installed")


@pytest.mark.slow
def test_simulate_from_videos_publishes_rounds_and_canary_is_a_separate_step(
        tmp_path, data_dir, server_key, talking_video):
    videos = tmp_path / "clients"
    for i in range(3):
        (videos / f"client-{i}").mkdir(parents=True)
        shutil.copy(talking_video, videos / f"client-{i}" / "clip.mp4")
    proc = run("fl", "simulate", "--clients", 3, "--rounds", 2, "--videos", videos,
               "--holdout", 0, "--dp", 0.5, "--population", 50, "--quantize",
               "--key", server_key.private_path, "--data-dir", data_dir, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["published"] == ["motion-tiny-fed@1.1.0", "motion-tiny-fed@1.2.0"]
    assert [r["clients"] for r in out["rounds"]] == [3, 3]
    assert 0 < out["rounds"][0]["epsilon"] < out["rounds"][1]["epsilon"] == out["epsilon"]
    assert set(out["motion_error"]) == {"base", "federated"}

    from mouthpiece.checkpoints import Registry

    registry = Registry(data_dir / "checkpoints", data_dir / "trust")
    assert "canary" not in registry.aliases()
    proc = run("fl", "publish", "--ref", "motion-tiny-fed@1.2.0", "--alias", "canary",
               "--data-dir", data_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"alias": "canary", "ref": "motion-tiny-fed@1.2.0"}
    assert registry.aliases()["canary"] == "motion-tiny-fed@1.2.0"
    assert registry.aliases()["stable"] == "motion-tiny@1.0.0"
