"""Verifiable checkpoints: signed bundles, trust store, registry with aliases, audit log.

A bundle is a folder (or its `.zip`): manifest.json (canonical JSON), manifest.sig (Ed25519
signatures), config.json and *.safetensors. See docs/checkpoints.md. torch is imported only
when weights are written or loaded.
"""

from mouthpiece.checkpoints.audit import AuditLog, audit_record
from mouthpiece.checkpoints.bundle import build_bundle, sign_bundle, zip_bundle
from mouthpiece.checkpoints.canonical import canonical_json, file_sha256
from mouthpiece.checkpoints.errors import CheckpointError
from mouthpiece.checkpoints.registry import InstalledBundle, Registry
from mouthpiece.checkpoints.signing import PINNED_MANIFEST_DIGESTS, KeyPair, TrustStore, generate_keypair
from mouthpiece.checkpoints.verify import LoadedCheckpoint, VerifyReport, load_bundle, verify_bundle

TRUST_DIR_NAME = "trust"


def trust_dir_for(data_dir):
    """The trust store of a data folder: `<data_dir>/trust` (one `*.pub` per trusted key)."""
    from pathlib import Path

    return Path(data_dir) / TRUST_DIR_NAME


__all__ = [
    "AuditLog", "CheckpointError", "InstalledBundle", "KeyPair", "LoadedCheckpoint", "PINNED_MANIFEST_DIGESTS",
    "Registry", "TrustStore", "VerifyReport", "audit_record", "build_bundle", "canonical_json", "file_sha256",
    "generate_keypair", "load_bundle", "sign_bundle", "trust_dir_for", "verify_bundle", "zip_bundle",
]
