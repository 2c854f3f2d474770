"""What a bundle says about itself, read without judging it (for `ckpt inspect`)."""

from __future__ import annotations

import json
from pathlib import Path

from mouthpiece.checkpoints.archive import open_entries
from mouthpiece.checkpoints.canonical import sha256_hex
from mouthpiece.checkpoints.errors import CheckpointError
from mouthpiece.checkpoints.manifest import MANIFEST_NAME, SIGNATURES_NAME, parse_json_object
from mouthpiece.checkpoints.verify import MAX_MANIFEST_BYTES, MAX_SIGNATURES_BYTES


def describe_bundle(bundle: str | Path) -> dict:
    """{path, sha256, manifest, signatures (claimed key ids), entries}; nothing verified here."""
    with open_entries(bundle) as entries:
        if MANIFEST_NAME not in entries:
            raise CheckpointError("missing_file", f"{bundle}: no manifest.json; not a checkpoint bundle")
        raw = entries[MANIFEST_NAME].read(MAX_MANIFEST_BYTES)
        manifest = parse_json_object(raw, "bad_manifest", f"{bundle}: manifest.json")
        key_ids = []
        if SIGNATURES_NAME in entries:
            try:
                doc = json.loads(entries[SIGNATURES_NAME].read(MAX_SIGNATURES_BYTES).decode("utf-8"))
                key_ids = [str(s.get("key_id")) for s in doc.get("signatures", []) if isinstance(s, dict)]
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, CheckpointError):
                key_ids = ["(unreadable manifest.sig)"]
        names = sorted(entries)
    return {"path": str(bundle), "sha256": sha256_hex(raw), "manifest": manifest, "signatures": key_ids,
            "entries": names}
