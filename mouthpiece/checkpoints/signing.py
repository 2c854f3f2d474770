"""Ed25519 keys, signatures over the canonical manifest, and the trust store.

`manifest.sig` is canonical JSON:
    {"format": "mouthpiece-signatures", "format_version": 1,
     "signatures": [{"algorithm": "ed25519", "key_id": <hex>, "public_key": <base64 raw 32 B>,
                     "signature": <base64 64 B>}, ...]}
Each signature covers SIGNING_CONTEXT + the exact bytes of manifest.json. Carrying the public
key lets anyone check that a signature is intact; whether it is *trusted* depends only on
whether its key id (SHA-256 of the raw public key) is in the trust store.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mouthpiece.checkpoints.canonical import canonical_json, sha256_hex
from mouthpiece.checkpoints.errors import CheckpointError

log = logging.getLogger(__name__)

SIGNATURES_FORMAT = "mouthpiece-signatures"
SIGNING_CONTEXT = b"mouthpiece checkpoint manifest v1\x00"  # domain separation: a key's
# signatures over other things can never pass as a manifest signature
PRIVATE_KEY_NAME = "private.pem"
PUBLIC_KEY_NAME = "public.pub"
MAX_SIGNATURES = 16

# Manifest digests (sha256 of manifest.json) trusted without any key: the shipped default
# checkpoint(s). motion-audio2mouth 1.0.0 = mouthpiece/assets/motion-default (`mouthpiece
# train --seed 0 --steps 4000`, signed by release key 9742e067…7f67).
PINNED_MANIFEST_DIGESTS: frozenset[str] = frozenset({
    "76143d3493427de0afe99827e4a6af652867911e1d007f50a5740a46c021bef5",
})


def key_id(raw_public_key: bytes) -> str:
    """Key id = hex SHA-256 of the 32 raw Ed25519 public-key bytes."""
    return sha256_hex(raw_public_key)


def _raw_public(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class KeyPair:
    key_id: str
    private_path: Path
    public_path: Path


def generate_keypair(out_dir: str | Path) -> KeyPair:
    """Write a new Ed25519 key: `private.pem` (PKCS#8, mode 0600) and `public.pub` (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / PRIVATE_KEY_NAME, out / PUBLIC_KEY_NAME
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise CheckpointError("conflict", f"{path} already exists; choose an empty key folder")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = private.public_key()
    public_path.write_bytes(public.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPair(key_id(_raw_public(public)), private_path, public_path)


def load_private_key(path: str | Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError("bad_key", f"{path}: not a readable unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError("bad_key", f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> bytes:
    """Raw 32-byte Ed25519 public key from a PEM `.pub` file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError("bad_key", f"{path}: not a readable PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError("bad_key", f"{path}: not an Ed25519 public key")
    return _raw_public(key)


class TrustStore:
    """Trusted key ids: every `*.pub` in `trust_dir` (missing folder = no keys) plus pinned digests."""

    def __init__(self, trust_dir: str | Path | None, pinned: frozenset[str] | set[str] = PINNED_MANIFEST_DIGESTS):
        self.trust_dir = Path(trust_dir) if trust_dir is not None else None
        self.pinned = frozenset(pinned)
        self.key_ids: frozenset[str] = frozenset(self._read_keys())

    def _read_keys(self) -> list[str]:
        if self.trust_dir is None or not self.trust_dir.is_dir():
            return []
        ids = []
        for path in sorted(self.trust_dir.glob("*.pub")):
            try:
                ids.append(key_id(load_public_key(path)))
            except CheckpointError as exc:  # one bad file must not hide the good keys
                log.warning("trust store: ignoring %s", exc)
        return ids

    def add(self, public_key_path: str | Path) -> str:
        """Copy a public key into the trust folder as `<key_id>.pub`; returns the key id."""
        if self.trust_dir is None:
            raise CheckpointError("bad_key", "no trust folder given")
        raw = load_public_key(public_key_path)
        kid = key_id(raw)
        self.trust_dir.mkdir(parents=True, exist_ok=True)
        target = self.trust_dir / f"{kid}.pub"
        tmp = target.with_suffix(".pub.tmp")
        tmp.write_bytes(Path(public_key_path).read_bytes())
        os.replace(tmp, target)
        self.key_ids = self.key_ids | {kid}
        return kid


@dataclass(frozen=True)
class Signature:
    key_id: str
    public_key: bytes  # raw 32 bytes
    signature: bytes  # 64 bytes


def sign_manifest(manifest_bytes: bytes, private_key) -> Signature:
    public = _raw_public(private_key.public_key())
    return Signature(key_id(public), public, private_key.sign(SIGNING_CONTEXT + manifest_bytes))


def encode_signatures(signatures: list[Signature]) -> bytes:
    return canonical_json({
        "format": SIGNATURES_FORMAT, "format_version": 1,
        "signatures": [{"algorithm": "ed25519", "key_id": s.key_id,
                        "public_key": base64.b64encode(s.public_key).decode("ascii"),
                        "signature": base64.b64encode(s.signature).decode("ascii")} for s in signatures],
    })


def decode_signatures(raw: bytes) -> list[Signature]:
    """Parse manifest.sig; anything malformed is a broken signature, not a parse error."""
    def broken(why: str) -> CheckpointError:
        return CheckpointError("bad_signature", f"manifest.sig is damaged: {why}")

    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise broken(f"not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURES_FORMAT or doc.get("format_version") != 1:
        raise broken(f"not a {SIGNATURES_FORMAT} v1 document")
    entries = doc.get("signatures")
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_SIGNATURES:
        raise broken(f"needs 1-{MAX_SIGNATURES} signatures")
    signatures = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("algorithm") != "ed25519":
            raise broken("only ed25519 signatures are accepted")
        try:
            public = base64.b64decode(entry["public_key"], validate=True)
            signature = base64.b64decode(entry["signature"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise broken(f"bad base64 ({exc})") from exc
        if (base64.b64encode(public).decode() != entry["public_key"]
                or base64.b64encode(signature).decode() != entry["signature"]):
            raise broken("non-canonical base64")  # no second spelling of the same signature
        if len(public) != 32 or len(signature) != 64:
            raise broken("wrong key or signature length")
        if entry.get("key_id") != key_id(public):
            raise broken(f"key id {str(entry.get('key_id'))[:16]}… does not match its public key")
        signatures.append(Signature(entry["key_id"], public, signature))
    return signatures


def check_signatures(manifest_bytes: bytes, signatures: list[Signature]) -> None:
    """Every signature present must verify: one broken signature means the bundle was altered."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for sig in signatures:
        try:
            Ed25519PublicKey.from_public_bytes(sig.public_key).verify(sig.signature, SIGNING_CONTEXT + manifest_bytes)
        except InvalidSignature as exc:
            raise CheckpointError(
                "bad_signature",
                f"signature by key {sig.key_id[:16]}… does not match manifest.json: the bundle was altered") from exc
