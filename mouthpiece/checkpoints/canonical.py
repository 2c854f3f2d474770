"""Canonical JSON (RFC 8785 / JCS) and SHA-256 helpers: the bytes that get hashed and signed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import rfc8785

from mouthpiece.checkpoints.errors import CheckpointError


def canonical_json(value: object) -> bytes:
    """RFC 8785 bytes of `value` (sorted keys, no spaces, UTF-8, ECMAScript numbers).

    NaN/Infinity and integers beyond ±2**53 have no canonical form and are refused.
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CheckpointError("bad_manifest", f"value cannot be written as canonical JSON: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Streaming SHA-256 of a file (for audit records of inputs and outputs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
