"""A real deployment on loopback: one SuperLink and three SuperNodes as separate processes,
started through `mouthpiece fl client --opt-in` and `mouthpiece fl server`; one SecAgg+ round
with DP and 8-bit updates, published into the registry with its lineage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

CLIENTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture
def processes():
    """Popen objects started in their own session; their whole groups are ended afterwards."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_superlink_and_supernodes_run_a_secagg_round_and_publish_it(
        tmp_path, data_dir, server_key, talking_video, processes):
    from mouthpiece.checkpoints import Registry
    from mouthpiece.federated.deploy import superlink_command
    from mouthpiece.federated.owner import flower_env

    env = dict(flower_env(), FLWR_HOME=str(tmp_path / "flwr-home"))
    link_port = _free_port()
    link = subprocess.Popen(superlink_command(link_port, insecure=True, node_auth=False),
                            stdout=open(tmp_path / "superlink.log", "w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    processes.append(link)
    _wait_for_port(link_port, link)

    cli = [sys.executable, "-m", "mouthpiece.cli"]
    for i in range(CLIENTS):
        videos = tmp_path / f"owner-{i}"
        videos.mkdir()
        shutil.copy(talking_video, videos / "me.mp4")
        node = subprocess.Popen(
            [*cli, "fl", "client", "--videos", str(videos), "--opt-in",
             "--superlink", f"127.0.0.1:{link_port}", "--insecure", "--port", str(_free_port()),
             "--data-dir", str(data_dir), "--work-dir", str(tmp_path / f"private-{i}")],
            stdout=open(tmp_path / f"client-{i}.log", "w"), stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        processes.append(node)

    started = time.monotonic()
    server = subprocess.run(
        [*cli, "fl", "server", "--superlink", f"127.0.0.1:{link_port}", "--insecure",
         "--key", str(server_key.private_path), "--rounds", "1", "--min-clients", str(CLIENTS),
         "--quantize", "--dp", "0.3", "--population", "30", "--data-dir", str(data_dir),
         "--work-dir", str(tmp_path / "server"), "--json"],
        capture_output=True, text=True, env=env, timeout=560)
    wall = time.monotonic() - started
    logs = "\n".join((tmp_path / f"client-{i}.log").read_text()[-1500:] for i in range(CLIENTS))
    assert server.returncode == 0, server.stderr[-4000:] + logs
    out = json.loads(server.stdout)
    assert out["published"] == ["motion-tiny-fed@1.1.0"], (out, server.stderr[-3000:])

    registry = Registry(data_dir / "checkpoints", data_dir / "trust")
    published = registry.load("motion-tiny-fed@1.1.0")
    lineage = published.manifest["recipe"]["federated"]
    assert published.trusted and lineage["round"] == 1 and lineage["clients"] == CLIENTS
    assert lineage["secagg"]["protocol"] == "SecAgg+" and lineage["quantization_bits"] == 8
    assert lineage["privacy"]["epsilon"] > 0
    assert published.manifest["parent"]["sha256"] == registry.load("stable").sha256
    print(f"deployment: {CLIENTS} SuperNodes × 1 SecAgg+ round in {wall:.0f} s (wall, loaded CPU)")
