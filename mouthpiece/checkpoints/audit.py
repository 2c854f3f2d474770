"""Append-only audit log of generations: one JSON object per line (JSONL).

Concurrent writers (threads and processes) are serialised with an exclusive `flock` on the
log file, and each record is written by one `write` of the whole line to an O_APPEND
descriptor, so lines never interleave or tear.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from mouthpiece.checkpoints.canonical import file_sha256
from mouthpiece.checkpoints.manifest import utc_now_iso

OUTCOMES = ("succeeded", "failed")


class AuditLog:
    """JSONL audit log at `path` (created on first append, mode 0640)."""

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def append(self, record: Mapping) -> None:
        line = (json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # per open file description: excludes threads too
            view = memoryview(line)
            while view:  # a regular file takes it in one write; loop only if the kernel splits it
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def __iter__(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def audit_record(*, checkpoint: object, inputs: Mapping[str, str | Path], audio_s: float | None,
                 duration_s: float | None, params: Mapping, output: str | Path | None, compute_s: float,
                 outcome: str, error: str | None = None, warnings: list[str] | tuple[str, ...] = (),
                 user: str | None = None, time: str | None = None) -> dict:
    """One audit line (CONTRACT.md): who, which checkpoint, which inputs, what came out.

    `checkpoint`: a LoadedCheckpoint, an {id, version, sha256, trusted} dict, or None (rules
    only). `inputs` / `output`: file paths (hashed here) or sha256 hex strings already computed.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
    if outcome == "failed" and not error:
        raise ValueError("a failed generation needs its error message")
    return {
        "time": time or utc_now_iso(),
        "user": user,
        "checkpoint": _checkpoint_fields(checkpoint),
        "inputs": {name: _digest(value) for name, value in inputs.items()},
        "audio_s": audio_s,
        "duration_s": duration_s,
        "params": dict(params),
        "output": _digest(output) if output is not None else None,
        "compute_s": compute_s,
        "outcome": outcome,
        "error": error,
        "warnings": list(warnings),
    }


def _checkpoint_fields(checkpoint: object) -> dict | None:
    if checkpoint is None:
        return None
    if hasattr(checkpoint, "summary"):
        return checkpoint.summary()
    return {key: checkpoint[key] for key in ("id", "version", "sha256", "trusted")}


def _digest(value: str | Path) -> str:
    """A sha256 hex string is kept; anything else is a path to hash."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value
    return file_sha256(value)
