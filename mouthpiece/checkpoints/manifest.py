"""The manifest: what a bundle claims about itself, and the checks on those claims.

`manifest.json` holds the canonical JSON (RFC 8785) of one object; its SHA-256 is the
bundle's identity (`LoadedCheckpoint.sha256`) and the bytes that signatures cover.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from mouthpiece.checkpoints.canonical import canonical_json
from mouthpiece.checkpoints.errors import CheckpointError

FORMAT = "mouthpiece-checkpoint"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURES_NAME = "manifest.sig"
CONFIG_NAME = "config.json"
WEIGHTS_SUFFIX = ".safetensors"

# semver.org 2.0.0: MAJOR.MINOR.PATCH[-prerelease][+build]
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

REQUIRED_FIELDS = (
    "format", "format_version", "id", "version", "architecture", "release_id", "files",
    "config_sha256", "code_range", "created_with", "recipe", "parent", "created",
)


def check_semver(version: str, what: str = "version") -> str:
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise CheckpointError("bad_manifest", f"{what} {version!r} is not a semantic version like 1.2.0")
    return version


def check_id(name: str, what: str = "checkpoint id") -> str:
    if not isinstance(name, str) or not _ID.match(name):
        raise CheckpointError(
            "bad_manifest", f"{what} {name!r} must be 1-64 characters of a-z, 0-9, '.', '_', '-'")
    return name


def is_bundle_file_name(name: str) -> bool:
    """Names a manifest may list: flat, plain, config.json or *.safetensors."""
    return bool(_FILE_NAME.match(name)) and (name == CONFIG_NAME or name.endswith(WEIGHTS_SUFFIX))


def check_code_range(spec: str) -> str:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(spec)
    except (InvalidSpecifier, TypeError) as exc:
        raise CheckpointError("bad_manifest", f"code range {spec!r} is not a version range like '>=0.1,<1.0'") from exc
    return spec


def default_code_range(code_version: str) -> str:
    """Same major version and at least this minor: 0.1.3 → '>=0.1,<1.0'."""
    major, minor = (int(part) for part in code_version.split(".")[:2])
    return f">={major}.{minor},<{major + 1}.0"


def check_compatible(manifest: dict, code_version: str, architecture: str | None) -> None:
    """Refuse a bundle made for another architecture or another range of mouthpiece versions."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    label = f"checkpoint {manifest['id']} {manifest['version']}"
    if architecture is not None and manifest["architecture"] != architecture:
        raise CheckpointError(
            "incompatible",
            f"{label} has architecture {manifest['architecture']!r}, this code loads {architecture!r}")
    spec = SpecifierSet(manifest["code_range"])
    if not spec.contains(Version(code_version), prereleases=True):
        raise CheckpointError(
            "incompatible",
            f"{label} was made for mouthpiece {manifest['code_range']} (built with "
            f"{manifest['created_with']}); this is mouthpiece {code_version}: use a checkpoint "
            f"released for {code_version.split('.')[0]}.x or a matching mouthpiece version")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_parent(parent: object) -> dict | None:
    """Lineage link: {id, version, sha256, release_id} of the checkpoint this one came from."""
    if parent is None:
        return None
    if isinstance(parent, dict):
        fields = {key: parent.get(key) for key in ("id", "version", "sha256", "release_id")}
    else:
        manifest = getattr(parent, "manifest", {}) or {}
        fields = {"id": getattr(parent, "id", None), "version": getattr(parent, "version", None),
                  "sha256": getattr(parent, "sha256", None), "release_id": manifest.get("release_id")}
    check_id(fields["id"], "parent id")
    check_semver(fields["version"], "parent version")
    if not isinstance(fields["sha256"], str) or not _SHA256.match(fields["sha256"]):
        raise CheckpointError("bad_manifest", "parent sha256 must be the parent's 64-hex manifest digest")
    if not isinstance(fields["release_id"], str) or not _UUID.match(fields["release_id"]):
        raise CheckpointError("bad_manifest", "parent release_id must be the parent's release UUID")
    return fields


def check_recipe(recipe: object) -> dict:
    """The training recipe must at least say how (command), with what seed, on what data."""
    if not isinstance(recipe, dict) or not {"command", "seed", "data"} <= recipe.keys():
        raise CheckpointError("bad_manifest", "recipe must be an object with 'command', 'seed' and 'data' (a summary)")
    return recipe


def parse_json_object(raw: bytes, code: str, name: str) -> dict:
    """UTF-8 JSON bytes that must hold an object; CheckpointError(`code`) naming `name` else."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(code, f"{name} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise CheckpointError(code, f"{name} must hold a JSON object")
    return value


def parse_manifest(raw: bytes) -> dict:
    """Parse and validate manifest bytes; they must already be in canonical form."""
    manifest = parse_json_object(raw, "bad_manifest", "manifest.json")
    if manifest.get("format") != FORMAT:
        raise CheckpointError("unsupported_format", f"manifest.json is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            "unsupported_format",
            f"manifest format version {manifest.get('format_version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION}); upgrade mouthpiece")
    missing = [key for key in REQUIRED_FIELDS if key not in manifest]
    if missing:
        raise CheckpointError("bad_manifest", f"manifest.json lacks {', '.join(missing)}")
    if canonical_json(manifest) != raw:
        raise CheckpointError("bad_manifest", "manifest.json is not in canonical (RFC 8785) form")
    check_id(manifest["id"])
    check_semver(manifest["version"])
    check_code_range(manifest["code_range"])
    check_recipe(manifest["recipe"])
    if manifest["parent"] is not None:
        normalize_parent(manifest["parent"])
    if not isinstance(manifest["release_id"], str) or not _UUID.match(manifest["release_id"]):
        raise CheckpointError("bad_manifest", "release_id must be a lowercase UUID")
    if not isinstance(manifest["config_sha256"], str) or not _SHA256.match(manifest["config_sha256"]):
        raise CheckpointError("bad_manifest", "config_sha256 must be 64 lowercase hex digits")
    _check_files(manifest["files"])
    return manifest


def _check_files(files: object) -> None:
    if not isinstance(files, dict) or CONFIG_NAME not in files:
        raise CheckpointError("bad_manifest", "manifest 'files' must list config.json and the weights")
    if not any(name.endswith(WEIGHTS_SUFFIX) for name in files):
        raise CheckpointError("bad_manifest", "manifest lists no .safetensors file")
    for name, entry in files.items():
        if not is_bundle_file_name(name):
            raise CheckpointError(
                "bad_manifest", f"manifest lists {name!r}: only config.json and flat *.safetensors names are allowed")
        if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or not _SHA256.match(entry["sha256"]) or type(entry.get("size")) is not int or entry["size"] < 0):
            raise CheckpointError("bad_manifest", f"manifest entry for {name} needs a sha256 (64 hex) and a size (bytes)")
