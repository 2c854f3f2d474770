"""Audit log: whole lines under concurrent writers (processes and threads), and the record fields."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mouthpiece.checkpoints import AuditLog, audit_record, file_sha256
from mouthpiece.checkpoints.canonical import sha256_hex

WRITER = """
import sys
from mouthpiece.checkpoints.audit import AuditLog
log, writer, count = AuditLog(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sys.stdin.readline()  # start together
for i in range(count):
    pad = "x" * (50 + (writer * 7919 + i * 104729) % 20000)  # lines of 50 B .. 20 kB
    log.append({"writer": writer, "i": i, "pad": pad, "n": len(pad)})
"""


def check_lines(path: Path, expected: set[tuple[int, int]]) -> None:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == len(expected)
    seen = set()
    for line in lines:
        record = json.loads(line)  # a torn or interleaved line would not parse
        assert len(record["pad"]) == record["n"] and set(record["pad"]) <= {"x", "y"}
        seen.add((record["writer"], record["i"]))
    assert seen == expected


def test_four_processes_append_800_whole_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "200"], stdin=subprocess.PIPE)
             for w in range(4)]
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    for proc in procs:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    check_lines(path, {(w, i) for w in range(4) for i in range(200)})


def test_threads_append_whole_lines(tmp_path):
    log = AuditLog(tmp_path / "logs" / "audit.jsonl")
    start = threading.Barrier(8)

    def write(writer: int) -> None:
        start.wait()
        for i in range(50):
            pad = "y" * (10 + (writer * 31 + i * 977) % 30000)
            log.append({"writer": writer, "i": i, "pad": pad, "n": len(pad)})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_lines(log.path, {(w, i) for w in range(8) for i in range(50)})
    assert len(list(log)) == 400


def test_audit_record_fields(tmp_path, signed_bundle, trust_dir, portrait_path):
    from mouthpiece.checkpoints import load_bundle

    checkpoint = load_bundle(signed_bundle, trust_dir)
    audio = tmp_path / "speech.wav"
    audio.write_bytes(b"RIFF-not-really-audio")
    output = tmp_path / "out.mp4"
    output.write_bytes(b"video bytes")
    params = {"fps": 25, "seed": 0, "dynamic_scale": 1.0}
    record = audit_record(checkpoint=checkpoint, inputs={"image": portrait_path, "audio": audio},
                          audio_s=3.2, duration_s=3.2, params=params, output=output, compute_s=0.41,
                          outcome="succeeded", warnings=["expand_ratio 0.9 is outside 0.3-0.7"], user="alice")
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(record)
    (line,) = log.path.read_text().splitlines()
    stored = json.loads(line)
    assert stored.keys() == {"time", "user", "checkpoint", "inputs", "audio_s", "duration_s", "params",
                             "output", "compute_s", "outcome", "error", "warnings"}
    assert stored["time"].endswith("Z") and stored["time"][:2] == "20"
    assert stored["user"] == "alice"
    assert stored["checkpoint"] == {"id": "toy", "version": "1.0.0", "sha256": checkpoint.sha256, "trusted": True}
    assert stored["inputs"] == {"image": file_sha256(portrait_path), "audio": sha256_hex(b"RIFF-not-really-audio")}
    assert (stored["audio_s"], stored["duration_s"], stored["compute_s"]) == (3.2, 3.2, 0.41)
    assert stored["params"] == params
    assert stored["output"] == sha256_hex(b"video bytes")
    assert (stored["outcome"], stored["error"]) == ("succeeded", None)
    assert stored["warnings"] == ["expand_ratio 0.9 is outside 0.3-0.7"]
    assert log.path.stat().st_mode & 0o007 == 0  # never world-readable


def test_failed_record_and_its_rules():
    digest = "ab" * 32
    record = audit_record(checkpoint=None, inputs={"image": digest}, audio_s=None, duration_s=5.0, params={},
                          output=None, compute_s=0.01, outcome="failed", error="no face found")
    assert (record["checkpoint"], record["output"], record["user"]) == (None, None, None)
    assert record["inputs"] == {"image": digest} and record["error"] == "no face found"
    with pytest.raises(ValueError):
        audit_record(checkpoint=None, inputs={}, audio_s=1.0, duration_s=1.0, params={}, output=None,
                     compute_s=0.0, outcome="failed")
    with pytest.raises(ValueError):
        audit_record(checkpoint=None, inputs={}, audio_s=1.0, duration_s=1.0, params={}, output=None,
                     compute_s=0.0, outcome="done")
