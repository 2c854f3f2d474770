"""Verifying and loading bundles: every check, in a fixed order, before any weight is used.

Order (the first failure refuses the bundle with its code):
  1. signature — manifest.sig intact for manifest.json; trusted key or pinned digest
  2. compatibility — architecture id and the mouthpiece version range
  3. every listed file's size and sha256 (and the config hash)
  4. the exact file set — nothing extra, no links (lstat / zip mode bits)
  5. the release id inside every safetensors header
Weights are parsed from the same verified bytes (never re-read, never unpickled).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mouthpiece
from mouthpiece.checkpoints.archive import MAX_BUNDLE_BYTES, Entry, open_entries
from mouthpiece.checkpoints.canonical import canonical_json, sha256_hex
from mouthpiece.checkpoints.errors import CheckpointError
from mouthpiece.checkpoints.manifest import (
    CONFIG_NAME, MANIFEST_NAME, SIGNATURES_NAME, WEIGHTS_SUFFIX, check_compatible, parse_json_object,
    parse_manifest,
)
from mouthpiece.checkpoints.signing import (
    PINNED_MANIFEST_DIGESTS, Signature, TrustStore, check_signatures, decode_signatures,
)

MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURES_BYTES = 64 << 10
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header


@dataclass
class VerifyReport:
    """Outcome of a successful verification. `trusted` is False only with allow_untrusted."""

    path: str
    id: str
    version: str
    architecture: str
    release_id: str
    sha256: str  # of the canonical manifest bytes: the bundle's identity
    trusted: bool
    pinned: bool
    signers: list[dict]  # [{key_id, trusted}]
    warnings: list[str]
    manifest: dict

    def to_json(self) -> dict:
        return {"intact": True, "path": self.path, "id": self.id, "version": self.version,
                "architecture": self.architecture, "release_id": self.release_id, "sha256": self.sha256,
                "trusted": self.trusted, "pinned": self.pinned, "signers": self.signers,
                "warnings": self.warnings}


@dataclass
class LoadedCheckpoint:
    """A verified bundle in memory: manifest, config, and weights as CPU torch tensors."""

    manifest: dict
    config: dict
    tensors: dict[str, Any]  # name → torch.Tensor
    trusted: bool
    sha256: str
    warnings: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def release_id(self) -> str:
        return self.manifest["release_id"]

    def summary(self) -> dict:
        """The `checkpoint` object of results and audit records."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256, "trusted": self.trusted}


@dataclass
class _Checked:
    report: VerifyReport
    manifest_bytes: bytes
    signatures_bytes: bytes | None
    files: dict[str, bytes]  # listed name → verified bytes


def verify_bundle(bundle: str | Path, trust_dir: str | Path | None = None, allow_untrusted: bool = False, *,
                  architecture: str | None = None, pinned: frozenset[str] = PINNED_MANIFEST_DIGESTS) -> VerifyReport:
    """Run every check; raise `CheckpointError` on the first failure, else return the report."""
    return _check(bundle, TrustStore(trust_dir, pinned), allow_untrusted=allow_untrusted,
                  architecture=architecture).report


def load_bundle(bundle: str | Path, trust_dir: str | Path | None = None, allow_untrusted: bool = False, *,
                architecture: str | None = None,
                pinned: frozenset[str] = PINNED_MANIFEST_DIGESTS) -> LoadedCheckpoint:
    """Verify a bundle (folder or .zip) and return its config and tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    checked = _check(bundle, TrustStore(trust_dir, pinned), allow_untrusted=allow_untrusted,
                     architecture=architecture)
    tensors: dict[str, Any] = {}
    for name, data in checked.files.items():
        if not name.endswith(WEIGHTS_SUFFIX):
            continue
        try:
            part = load_safetensors(data)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise CheckpointError("bad_weights", f"{name}: unreadable safetensors ({exc})") from exc
        clash = tensors.keys() & part.keys()
        if clash:
            raise CheckpointError("bad_weights", f"tensor {sorted(clash)[0]!r} appears in two weight files")
        tensors.update(part)
    config = json.loads(checked.files[CONFIG_NAME])
    report = checked.report
    return LoadedCheckpoint(report.manifest, config, tensors, report.trusted, report.sha256, report.warnings)


def _check(bundle: str | Path, trust: TrustStore, *, allow_untrusted: bool, architecture: str | None,
           code_version: str | None = mouthpiece.__version__) -> _Checked:
    """All checks in order; `code_version=None` skips the version range (signing for other code)."""
    with open_entries(bundle) as entries:
        if MANIFEST_NAME not in entries:
            raise CheckpointError("missing_file", f"{bundle}: no manifest.json; not a checkpoint bundle")
        manifest_bytes = entries[MANIFEST_NAME].read(MAX_MANIFEST_BYTES)
        has_signatures = SIGNATURES_NAME in entries
        signatures_bytes = entries[SIGNATURES_NAME].read(MAX_SIGNATURES_BYTES) if has_signatures else None

        signatures = decode_signatures(signatures_bytes) if signatures_bytes is not None else []  # 1.
        check_signatures(manifest_bytes, signatures)
        manifest = parse_manifest(manifest_bytes)
        label = f"checkpoint {manifest['id']} {manifest['version']} ({bundle})"
        sha256 = sha256_hex(manifest_bytes)
        trusted, warnings = _trust_decision(signatures, sha256, trust, allow_untrusted, label)
        if code_version is not None:  # 2.
            check_compatible(manifest, code_version, architecture)
        files = _read_listed_files(entries, manifest, label)  # 3.
        _check_file_set(entries, manifest, label)  # 4.
    _check_release_ids(files, manifest, label)  # 5.

    signers = [{"key_id": s.key_id, "trusted": s.key_id in trust.key_ids} for s in signatures]
    report = VerifyReport(str(bundle), manifest["id"], manifest["version"], manifest["architecture"],
                          manifest["release_id"], sha256, trusted, sha256 in trust.pinned, signers,
                          warnings, manifest)
    return _Checked(report, manifest_bytes, signatures_bytes, files)


def _trust_decision(signatures: list[Signature], sha256: str, trust: TrustStore, allow_untrusted: bool,
                    label: str) -> tuple[bool, list[str]]:
    """(trusted, warnings); untrusted refuses unless explicitly allowed."""
    if sha256 in trust.pinned or any(s.key_id in trust.key_ids for s in signatures):
        return True, []
    why = _untrusted_reason(signatures, trust)
    if not allow_untrusted:
        raise CheckpointError("unsigned" if not signatures else "untrusted",
                              f"{label} {why}; refusing it (allow untrusted checkpoints explicitly to load it anyway)")
    return False, [f"{label} {why}; loaded because untrusted checkpoints were allowed"]


def _read_listed_files(entries: dict[str, Entry], manifest: dict, label: str) -> dict[str, bytes]:
    """Bytes of every listed file, each matching its size and sha256, and the config hash."""
    listed = manifest["files"]
    if sum(entry["size"] for entry in listed.values()) > MAX_BUNDLE_BYTES:
        raise CheckpointError("too_large", f"{label} is larger than {MAX_BUNDLE_BYTES} bytes")
    files = {}
    for name, expected in listed.items():
        if name not in entries:
            raise CheckpointError("missing_file", f"{label}: {name} is listed in the manifest but missing")
        entry = entries[name]
        if entry.kind == "file" and entry.size != expected["size"]:
            raise CheckpointError("size_mismatch", f"{label}: {name} is {entry.size} bytes, the manifest says {expected['size']}")
        data = entry.read(expected["size"])  # refuses links and non-files
        if len(data) != expected["size"]:
            raise CheckpointError("size_mismatch", f"{label}: {name} is {len(data)} bytes, the manifest says {expected['size']}")
        if sha256_hex(data) != expected["sha256"]:
            raise CheckpointError("hash_mismatch", f"{label}: {name} does not match its sha256 in the manifest")
        files[name] = data
    config = _parse_config(files[CONFIG_NAME], label)
    if sha256_hex(canonical_json(config)) != manifest["config_sha256"]:
        raise CheckpointError("hash_mismatch", f"{label}: config.json does not match config_sha256")
    return files


def _check_file_set(entries: dict[str, Entry], manifest: dict, label: str) -> None:
    """Exactly the listed files plus manifest.json / manifest.sig: no extras, no links."""
    allowed = set(manifest["files"]) | {MANIFEST_NAME, SIGNATURES_NAME}
    for name, entry in sorted(entries.items()):
        if entry.kind == "symlink":
            raise CheckpointError("symlink", f"{label}: {name} is a symbolic link; bundles hold plain files only")
        if name not in allowed or entry.kind != "file":
            raise CheckpointError("unexpected_file", f"{label}: unexpected {name!r} (not listed in the manifest)")


def _check_release_ids(files: dict[str, bytes], manifest: dict, label: str) -> None:
    for name, data in files.items():
        if name.endswith(WEIGHTS_SUFFIX):
            release = _safetensors_metadata(data, f"{label}: {name}").get("release_id")
            if release != manifest["release_id"]:
                raise CheckpointError(
                    "release_mismatch",
                    f"{label}: {name} belongs to release {release}, not {manifest['release_id']}; "
                    "files of different releases cannot be combined")


def _untrusted_reason(signatures: list[Signature], trust: TrustStore) -> str:
    if not signatures:
        return "is not signed by a trusted key (it has no signature)"
    ids = ", ".join(s.key_id[:16] + "…" for s in signatures)
    where = f"trust store {trust.trust_dir}" if trust.trust_dir else "no trust store given"
    return f"is not signed by a trusted key (signed by {ids}; {where})"


def _parse_config(data: bytes, label: str) -> dict:
    return parse_json_object(data, "bad_config", f"{label}: config.json")


def _safetensors_metadata(data: bytes, label: str) -> dict:
    """The `__metadata__` of a safetensors header (8-byte little-endian length, then JSON).

    Read from the verified bytes instead of `safe_open(path)` so nothing is re-read from disk
    between the hash check and use.
    """
    if len(data) < 8:
        raise CheckpointError("bad_weights", f"{label} is too short for a safetensors file")
    (length,) = struct.unpack("<Q", data[:8])  # header size in bytes
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise CheckpointError("bad_weights", f"{label} has an invalid safetensors header length")
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError("bad_weights", f"{label} has an unreadable safetensors header ({exc})") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}
