"""Installed checkpoints: immutable `id@version` folders plus movable aliases (stable, canary, …).

Layout under `root`:
    bundles/<id>@<version>/   a verified bundle, written once, files read-only
    aliases/<name>.json       {"ref": "<id>@<version>", "sha256": <manifest digest>, "updated": <UTC>}
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mouthpiece.checkpoints.canonical import sha256_hex
from mouthpiece.checkpoints.errors import CheckpointError
from mouthpiece.checkpoints.manifest import MANIFEST_NAME, SIGNATURES_NAME, utc_now_iso
from mouthpiece.checkpoints.signing import PINNED_MANIFEST_DIGESTS, TrustStore
from mouthpiece.checkpoints.verify import LoadedCheckpoint, VerifyReport, _check, load_bundle

_ALIAS = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class InstalledBundle:
    ref: str  # "<id>@<version>"
    id: str
    version: str
    sha256: str
    path: Path
    aliases: tuple[str, ...]


class Registry:
    """Checkpoints installed under `root`, checked against `trust_dir` on install and load."""

    def __init__(self, root: str | Path, trust_dir: str | Path | None = None, *, allow_untrusted: bool = False,
                 pinned: frozenset[str] = PINNED_MANIFEST_DIGESTS) -> None:
        self.root = Path(root)
        self.trust_dir = trust_dir
        self.allow_untrusted = allow_untrusted
        self.pinned = pinned
        self.bundles_dir = self.root / "bundles"
        self.aliases_dir = self.root / "aliases"

    def install(self, bundle_path: str | Path) -> VerifyReport:
        """Verify a bundle (folder or .zip) and copy its verified bytes in as `id@version`.

        Installing the same content again is a no-op; different content under an installed
        `id@version` is refused: a version, once installed, never changes.
        """
        checked = _check(bundle_path, TrustStore(self.trust_dir, self.pinned),
                         allow_untrusted=self.allow_untrusted, architecture=None)
        report = checked.report
        ref = f"{report.id}@{report.version}"
        target = self.bundles_dir / ref
        if self._same_or_conflict(target, report.sha256, ref):
            return report
        self.bundles_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{ref}.", dir=self.bundles_dir))
        os.chmod(tmp, 0o755)
        files = dict(checked.files, **{MANIFEST_NAME: checked.manifest_bytes})
        if checked.signatures_bytes is not None:
            files[SIGNATURES_NAME] = checked.signatures_bytes
        for name, data in files.items():
            (tmp / name).write_bytes(data)
            os.chmod(tmp / name, 0o444)
        try:
            os.rename(tmp, target)
        except OSError as exc:  # someone installed it meanwhile: same content is fine, else refuse
            _remove_tree(tmp)
            if not self._same_or_conflict(target, report.sha256, ref):
                raise CheckpointError("conflict", f"cannot install {ref} into {target}: {exc}") from exc
        return report

    def _same_or_conflict(self, target: Path, sha256: str, ref: str) -> bool:
        if not target.exists():
            return False
        installed = sha256_hex((target / MANIFEST_NAME).read_bytes())
        if installed != sha256:
            raise CheckpointError(
                "conflict", f"{ref} is already installed with different content (manifest {installed[:12]}…, "
                            f"new {sha256[:12]}…); release it under a new version")
        return True

    def set_alias(self, name: str, ref: str) -> str:
        """Point alias `name` at an installed `id@version` (or at another alias's target)."""
        if not _ALIAS.match(name) or "@" in name:
            raise CheckpointError("bad_ref", f"alias {name!r} must be 1-64 characters of a-z, 0-9, '.', '_', '-'")
        target = self.resolve(ref)
        resolved = target.name
        record = {"ref": resolved, "sha256": sha256_hex((target / MANIFEST_NAME).read_bytes()), "updated": utc_now_iso()}
        self.aliases_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.aliases_dir)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.aliases_dir / f"{name}.json")  # readers see the old or the new, never half
        return resolved

    def aliases(self) -> dict[str, str]:
        """Alias name → `id@version`."""
        if not self.aliases_dir.is_dir():
            return {}
        return {path.stem: json.loads(path.read_text())["ref"] for path in sorted(self.aliases_dir.glob("*.json"))}

    def resolve(self, ref: str) -> Path:
        """Folder of an installed bundle, from `id@version` or an alias name."""
        if "@" not in ref:
            alias_file = self.aliases_dir / f"{ref}.json"
            if not _ALIAS.match(ref) or not alias_file.is_file():
                raise CheckpointError("not_found", f"no checkpoint alias {ref!r} (known: {', '.join(self.aliases()) or 'none'})")
            ref = json.loads(alias_file.read_text())["ref"]
        target = self.bundles_dir / ref
        if "/" in ref or ref.startswith(".") or not target.is_dir():
            raise CheckpointError("not_found", f"checkpoint {ref} is not installed")
        return target

    def list(self) -> list[InstalledBundle]:
        by_ref: dict[str, list[str]] = {}
        for alias, ref in self.aliases().items():
            by_ref.setdefault(ref, []).append(alias)
        installed = []
        if self.bundles_dir.is_dir():
            for folder in sorted(self.bundles_dir.iterdir()):
                if folder.name.startswith(".") or "@" not in folder.name:
                    continue
                bundle_id, version = folder.name.split("@", 1)
                digest = sha256_hex((folder / MANIFEST_NAME).read_bytes())
                installed.append(InstalledBundle(folder.name, bundle_id, version, digest, folder,
                                                 tuple(by_ref.get(folder.name, ()))))
        return installed

    def load(self, ref: str, *, architecture: str | None = None) -> LoadedCheckpoint:
        """Resolve and load (fully verified again: installed files are not taken on faith)."""
        return load_bundle(self.resolve(ref), self.trust_dir, self.allow_untrusted,
                           architecture=architecture, pinned=self.pinned)


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.chmod(0o644)
        child.unlink()
    path.rmdir()
