"""Writing bundles: build (weights + config + manifest), sign, zip."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import mouthpiece
from mouthpiece.checkpoints.canonical import canonical_json, sha256_hex
from mouthpiece.checkpoints.errors import CheckpointError
from mouthpiece.checkpoints.manifest import (
    CONFIG_NAME, FORMAT, FORMAT_VERSION, MANIFEST_NAME, SIGNATURES_NAME, check_code_range, check_id,
    check_recipe, check_semver, default_code_range, normalize_parent, utc_now_iso,
)
from mouthpiece.checkpoints.signing import (
    TrustStore, decode_signatures, encode_signatures, load_private_key, sign_manifest,
)

WEIGHTS_NAME = "model.safetensors"


def build_bundle(out_dir: str | Path, tensors: dict[str, Any], config: dict, *, architecture: str,
                 version: str, recipe: dict, parent: object = None, code_range: str | None = None,
                 name: str | None = None) -> Path:
    """Write an unsigned bundle folder `out_dir` (must not exist yet) and return its path.

    `tensors`: name → torch.Tensor (a state_dict); `config`: the architecture's *Config as JSON;
    `recipe`: {"command", "seed", "data"} at least; `parent`: a LoadedCheckpoint / VerifyReport or
    {id, version, sha256, release_id} for fine-tunes and federated rounds; `code_range`: the
    mouthpiece versions it works with (default: this major version); `name`: the checkpoint id
    (default: `architecture`, cleaned).
    """
    from safetensors.torch import save as save_safetensors

    out = Path(out_dir)
    if out.exists() or out.is_symlink():
        raise CheckpointError("conflict", f"{out} already exists; bundles are written once, to a new folder")
    bundle_id = check_id(name if name is not None else _id_from(architecture))
    check_semver(version)
    code_range = check_code_range(code_range or default_code_range(mouthpiece.__version__))
    release_id = str(uuid.uuid4())
    config_bytes = canonical_json(config)
    # Copies break shared storage (tied weights), which safetensors refuses.
    weights = {key: value.detach().to("cpu").contiguous().clone() for key, value in tensors.items()}
    weights_bytes = save_safetensors(weights, metadata={"release_id": release_id, "format": "pt"})
    files = {CONFIG_NAME: config_bytes, WEIGHTS_NAME: weights_bytes}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "id": bundle_id, "version": version, "architecture": architecture, "release_id": release_id,
        "files": {fname: {"sha256": sha256_hex(data), "size": len(data)} for fname, data in files.items()},
        "config_sha256": sha256_hex(config_bytes),
        "code_range": code_range, "created_with": mouthpiece.__version__,
        "recipe": check_recipe(recipe), "parent": normalize_parent(parent), "created": utc_now_iso(),
    }
    files[MANIFEST_NAME] = canonical_json(manifest)
    return write_folder_atomically(out, files)


def write_folder_atomically(out: Path, files: dict[str, bytes]) -> Path:
    """Write all files into a temporary sibling folder, then rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        os.rename(tmp, out)  # fails if `out` appeared meanwhile: nothing is overwritten
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError("conflict", f"cannot write bundle {out}: {exc}") from exc
    return out


def _id_from(architecture: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in architecture.lower()).strip("-._")
    return cleaned[:64] or "checkpoint"


def sign_bundle(bundle: str | Path, private_key_path: str | Path) -> str:
    """Add (or renew) this key's signature in `manifest.sig`; returns the key id.

    The bundle is fully checked first (files against the manifest, existing signatures intact),
    so a key never vouches for a bundle that was altered after it was built.
    """
    from mouthpiece.checkpoints.verify import _check

    path = Path(bundle)
    if not path.is_dir():
        raise CheckpointError("not_found", f"{bundle}: sign a bundle folder (zip it afterwards)")
    key = load_private_key(private_key_path)
    checked = _check(path, TrustStore(None), allow_untrusted=True, architecture=None, code_version=None)
    signature = sign_manifest(checked.manifest_bytes, key)
    existing = decode_signatures(checked.signatures_bytes) if checked.signatures_bytes else []
    signatures = [s for s in existing if s.key_id != signature.key_id] + [signature]
    tmp = path / f".{SIGNATURES_NAME}.tmp"
    tmp.write_bytes(encode_signatures(signatures))
    os.replace(tmp, path / SIGNATURES_NAME)
    return signature.key_id


def zip_bundle(bundle: str | Path, out_zip: str | Path) -> Path:
    """Pack a bundle folder into a flat `.zip` (members at the root, stored uncompressed).

    Only the verified files go in (manifest, signatures, listed files), so a zip never
    carries something its folder would have been refused for.
    """
    from mouthpiece.checkpoints.verify import _check

    out = Path(out_zip)
    if out.exists():
        raise CheckpointError("conflict", f"{out} already exists")
    checked = _check(Path(bundle), TrustStore(None), allow_untrusted=True, architecture=None, code_version=None)
    members = dict(checked.files, **{MANIFEST_NAME: checked.manifest_bytes})
    if checked.signatures_bytes is not None:
        members[SIGNATURES_NAME] = checked.signatures_bytes
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for fname in sorted(members):
            zf.writestr(fname, members[fname])
    os.replace(tmp, out)
    return out
