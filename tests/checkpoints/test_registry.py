"""Registry: verified installs, immutable id@version, aliases that move atomically."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from mouthpiece.checkpoints import CheckpointError, Registry, build_bundle, sign_bundle, zip_bundle

from .conftest import ARCH, RECIPE, TOY_CONFIG, toy_model


def refused(code: str, fn, *args, **kwargs) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    return info.value


def release(tmp_path, keys, version: str, seed: int, folder: str | None = None):
    out = build_bundle(tmp_path / (folder or f"toy-{version}"), toy_model(seed).state_dict(), TOY_CONFIG,
                       architecture=ARCH, version=version, recipe=RECIPE, name="toy")
    sign_bundle(out, keys["a"].private_path)
    return out


def test_install_alias_resolve_load(tmp_path, keys, trust_dir):
    registry = Registry(tmp_path / "registry", trust_dir)
    v1 = registry.install(release(tmp_path, keys, "1.0.0", seed=0))
    v2 = registry.install(zip_bundle(release(tmp_path, keys, "1.1.0", seed=1), tmp_path / "v2.zip"))
    assert (v1.id, v1.version, v2.version) == ("toy", "1.0.0", "1.1.0")

    assert registry.set_alias("stable", "toy@1.0.0") == "toy@1.0.0"
    assert registry.set_alias("canary", "toy@1.1.0") == "toy@1.1.0"
    assert registry.resolve("stable") == tmp_path / "registry" / "bundles" / "toy@1.0.0"
    assert registry.load("canary").sha256 == v2.sha256
    assert torch.equal(registry.load("stable").tensors["head.bias"], toy_model(0).state_dict()["head.bias"])

    listed = {b.ref: b for b in registry.list()}
    assert set(listed) == {"toy@1.0.0", "toy@1.1.0"}
    assert listed["toy@1.0.0"].aliases == ("stable",) and listed["toy@1.1.0"].sha256 == v2.sha256

    # Promote canary to stable: the alias moves, the versions do not.
    registry.set_alias("stable", "canary")
    assert registry.aliases() == {"canary": "toy@1.1.0", "stable": "toy@1.1.0"}
    alias_dir = tmp_path / "registry" / "aliases"
    assert sorted(os.listdir(alias_dir)) == ["canary.json", "stable.json"]  # no temp files left behind
    assert json.loads((alias_dir / "stable.json").read_text())["sha256"] == v2.sha256


def test_installed_versions_are_immutable(tmp_path, keys, trust_dir):
    registry = Registry(tmp_path / "registry", trust_dir)
    first = release(tmp_path, keys, "1.0.0", seed=0)
    registry.install(first)
    assert registry.install(first).sha256 == registry.load("toy@1.0.0").sha256  # same content: no-op
    other = release(tmp_path, keys, "1.0.0", seed=1, folder="same-version-other-weights")
    error = refused("conflict", registry.install, other)
    assert "toy@1.0.0" in str(error)
    installed = tmp_path / "registry" / "bundles" / "toy@1.0.0"
    assert all(p.stat().st_mode & 0o222 == 0 for p in installed.iterdir())


def test_install_refuses_untrusted_or_altered(tmp_path, keys, trust_dir):
    bundle = release(tmp_path, keys, "1.0.0", seed=0)
    refused("untrusted", Registry(tmp_path / "r1", tmp_path / "no-trust").install, bundle)
    assert not (tmp_path / "r1" / "bundles" / "toy@1.0.0").exists()
    assert Registry(tmp_path / "r2", tmp_path / "no-trust", allow_untrusted=True).install(bundle).trusted is False

    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    (altered / "notes.txt").write_text("x")
    refused("unexpected_file", Registry(tmp_path / "r3", trust_dir).install, altered)


def test_load_re_verifies_installed_files(tmp_path, keys, trust_dir):
    registry = Registry(tmp_path / "registry", trust_dir)
    registry.install(release(tmp_path, keys, "1.0.0", seed=0))
    weights = registry.resolve("toy@1.0.0") / "model.safetensors"
    weights.chmod(0o644)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    refused("hash_mismatch", registry.load, "toy@1.0.0")


def test_unknown_refs_and_bad_alias_names(tmp_path, keys, trust_dir):
    registry = Registry(tmp_path / "registry", trust_dir)
    refused("not_found", registry.resolve, "stable")
    refused("not_found", registry.resolve, "toy@9.9.9")
    refused("not_found", registry.resolve, "../../etc")
    refused("not_found", registry.set_alias, "stable", "toy@1.0.0")
    registry.install(release(tmp_path, keys, "1.0.0", seed=0))
    refused("bad_ref", registry.set_alias, "../evil", "toy@1.0.0")
    refused("bad_ref", registry.set_alias, "Stable", "toy@1.0.0")
