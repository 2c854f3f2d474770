"""Bundle round trip and every way a bundle can be altered: each refused with its own code."""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid

import pytest
import torch

import mouthpiece
from mouthpiece.checkpoints import (
    CheckpointError, build_bundle, canonical_json, load_bundle, sign_bundle, verify_bundle,
)
from mouthpiece.checkpoints.canonical import sha256_hex
from mouthpiece.checkpoints.signing import encode_signatures, load_private_key, sign_manifest
from mouthpiece.types import InputError

from .conftest import ARCH, RECIPE, TOY_CONFIG, ToyAudioToMotion, toy_model


def refused(code: str, fn, *args, **kwargs) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    return info.value


def flip(path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def rewrite_manifest(bundle, **changes) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest.update(changes)
    (bundle / "manifest.json").write_bytes(canonical_json(manifest))
    return manifest


# --- the good path -------------------------------------------------------------------------

def test_sign_verify_load_round_trip(signed_bundle, trust_dir, keys):
    report = verify_bundle(signed_bundle, trust_dir)
    assert report.trusted and not report.warnings
    assert report.signers == [{"key_id": keys["a"].key_id, "trusted": True}]

    loaded = load_bundle(signed_bundle, trust_dir)
    original = toy_model(0).state_dict()
    assert loaded.tensors.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(loaded.tensors[name], tensor), name
    assert loaded.config == TOY_CONFIG
    assert loaded.trusted and loaded.warnings == []
    assert (loaded.id, loaded.version) == ("toy", "1.0.0")
    assert loaded.sha256 == sha256_hex((signed_bundle / "manifest.json").read_bytes()) == report.sha256

    model = ToyAudioToMotion()
    model.load_state_dict(loaded.tensors)
    mel = torch.randn(1, 20, 8)  # (B, T, n_mels)
    assert torch.equal(model(mel), toy_model(0)(mel))


def test_manifest_records_what_issue_6_asks(signed_bundle):
    raw = (signed_bundle / "manifest.json").read_bytes()
    manifest = json.loads(raw)
    assert canonical_json(manifest) == raw  # stored in RFC 8785 form
    assert manifest["format_version"] == 1 and manifest["version"] == "1.0.0"
    assert manifest["architecture"] == ARCH
    assert uuid.UUID(manifest["release_id"]).version == 4
    for name in ("config.json", "model.safetensors"):
        data = (signed_bundle / name).read_bytes()
        assert manifest["files"][name] == {"sha256": sha256_hex(data), "size": len(data)}
    assert manifest["config_sha256"] == sha256_hex(canonical_json(TOY_CONFIG))
    assert manifest["code_range"] == ">=0.1,<1.0" and manifest["created_with"] == mouthpiece.__version__
    assert manifest["recipe"] == RECIPE and manifest["parent"] is None
    assert manifest["created"].endswith("Z")
    from safetensors import safe_open

    with safe_open(signed_bundle / "model.safetensors", framework="pt") as handle:
        assert handle.metadata()["release_id"] == manifest["release_id"]


def test_fine_tune_records_its_parent(tmp_path, signed_bundle, trust_dir):
    parent = load_bundle(signed_bundle, trust_dir)
    child = build_bundle(tmp_path / "child", toy_model(1).state_dict(), TOY_CONFIG, architecture=ARCH,
                         version="1.1.0", recipe=RECIPE, parent=parent, name="toy")
    lineage = json.loads((child / "manifest.json").read_bytes())["parent"]
    assert lineage == {"id": "toy", "version": "1.0.0", "sha256": parent.sha256,
                       "release_id": parent.manifest["release_id"]}


def test_build_refuses_bad_metadata(tmp_path):
    state = toy_model(0).state_dict()
    args = dict(architecture=ARCH, recipe=RECIPE)
    refused("bad_manifest", build_bundle, tmp_path / "a", state, TOY_CONFIG, version="1.0", **args)
    refused("bad_manifest", build_bundle, tmp_path / "b", state, TOY_CONFIG, version="1.0.0",
            architecture=ARCH, recipe={"command": "train"})
    refused("bad_manifest", build_bundle, tmp_path / "c", state, {"lr": float("nan")}, version="1.0.0", **args)
    (tmp_path / "d").mkdir()
    refused("conflict", build_bundle, tmp_path / "d", state, TOY_CONFIG, version="1.0.0", **args)


# --- one flipped byte in each file ---------------------------------------------------------

def positions(size: int, count: int | None) -> list[int]:
    """`count` byte offsets spread over the file (first and last included), or all of them."""
    if count is None or count >= size:
        return list(range(size))
    return sorted({round(i * (size - 1) / (count - 1)) for i in range(count)})


def assert_flips_refused(bundle, trust_dir, name: str, count: int | None) -> None:
    path = bundle / name
    original = path.read_bytes()
    for position in positions(len(original), count):
        flip(path, position)
        refused("bad_signature", verify_bundle, bundle, trust_dir)
        path.write_bytes(original)
    verify_bundle(bundle, trust_dir)  # restored: fine again


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sig"])
def test_flipped_byte_in_manifest_or_signature_is_refused(signed_bundle, trust_dir, name):
    assert_flips_refused(signed_bundle, trust_dir, name, count=40)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["manifest.json", "manifest.sig"])
def test_every_flipped_byte_of_manifest_or_signature_is_refused(signed_bundle, trust_dir, name):
    assert_flips_refused(signed_bundle, trust_dir, name, count=None)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_flipped_byte_in_config_or_weights_is_refused(signed_bundle, trust_dir, name):
    path = signed_bundle / name
    original = path.read_bytes()
    for position in (0, len(original) // 3, len(original) // 2, len(original) - 1):
        flip(path, position)
        error = refused("hash_mismatch", load_bundle, signed_bundle, trust_dir)
        assert name in str(error)
        path.write_bytes(original)


def test_longer_or_shorter_file_is_a_size_mismatch(signed_bundle, trust_dir):
    path = signed_bundle / "model.safetensors"
    original = path.read_bytes()
    path.write_bytes(original + b"\0")
    refused("size_mismatch", verify_bundle, signed_bundle, trust_dir)
    path.write_bytes(original[:-1])
    refused("size_mismatch", verify_bundle, signed_bundle, trust_dir)


# --- files from another release ------------------------------------------------------------

@pytest.fixture
def mixed_bundle(tmp_path, signed_bundle):
    """`signed_bundle` with the weights of another release (same tensor names) swapped in."""
    other = build_bundle(tmp_path / "other", toy_model(1).state_dict(), TOY_CONFIG, architecture=ARCH,
                         version="1.0.0", recipe=RECIPE, name="toy")
    shutil.copy(other / "model.safetensors", signed_bundle / "model.safetensors")
    return signed_bundle


def test_swapped_weights_fail_their_hash(mixed_bundle, trust_dir):
    refused("hash_mismatch", verify_bundle, mixed_bundle, trust_dir)


def test_swapped_weights_with_rewritten_hash_break_the_signature(mixed_bundle, trust_dir):
    data = (mixed_bundle / "model.safetensors").read_bytes()
    manifest = json.loads((mixed_bundle / "manifest.json").read_bytes())
    manifest["files"]["model.safetensors"] = {"sha256": sha256_hex(data), "size": len(data)}
    (mixed_bundle / "manifest.json").write_bytes(canonical_json(manifest))
    refused("bad_signature", verify_bundle, mixed_bundle, trust_dir)


def test_swapped_weights_re_signed_by_an_untrusted_key(mixed_bundle, trust_dir, keys):
    data = (mixed_bundle / "model.safetensors").read_bytes()
    manifest = json.loads((mixed_bundle / "manifest.json").read_bytes())
    manifest["files"]["model.safetensors"] = {"sha256": sha256_hex(data), "size": len(data)}
    raw = canonical_json(manifest)
    (mixed_bundle / "manifest.json").write_bytes(raw)
    signature = sign_manifest(raw, load_private_key(keys["c"].private_path))  # the attacker's key
    (mixed_bundle / "manifest.sig").write_bytes(encode_signatures([signature]))

    error = refused("untrusted", load_bundle, mixed_bundle, trust_dir)
    assert "not signed by a trusted key" in str(error)
    error = refused("release_mismatch", load_bundle, mixed_bundle, trust_dir, allow_untrusted=True)
    assert manifest["release_id"] in str(error)


# --- manifest edits, keys, signatures ------------------------------------------------------

def test_manifest_edit_breaks_the_signature(signed_bundle, trust_dir):
    rewrite_manifest(signed_bundle, version="1.0.1")
    refused("bad_signature", verify_bundle, signed_bundle, trust_dir)
    rewrite_manifest(signed_bundle, version="1.0.0", code_range=">=0.0,<99.0")
    refused("bad_signature", verify_bundle, signed_bundle, trust_dir)


def test_signature_by_a_key_not_in_the_trust_store_is_refused(tmp_path, signed_bundle, keys):
    from mouthpiece.checkpoints import TrustStore

    other_trust = tmp_path / "trust_b"
    TrustStore(other_trust).add(keys["b"].public_path)
    error = refused("untrusted", verify_bundle, signed_bundle, other_trust)
    assert keys["a"].key_id[:16] in str(error) and "not signed by a trusted key" in str(error)
    refused("untrusted", verify_bundle, signed_bundle, None)  # no trust store at all

    report = verify_bundle(signed_bundle, other_trust, allow_untrusted=True)
    assert not report.trusted and "not signed by a trusted key" in report.warnings[0]


def test_unsigned_bundle_needs_allow_untrusted_and_warns(signed_bundle, trust_dir):
    (signed_bundle / "manifest.sig").unlink()
    error = refused("unsigned", load_bundle, signed_bundle, trust_dir)
    assert isinstance(error, InputError) and "toy 1.0.0" in str(error)
    loaded = load_bundle(signed_bundle, trust_dir, allow_untrusted=True)
    assert not loaded.trusted
    assert len(loaded.warnings) == 1 and "is not signed by a trusted key" in loaded.warnings[0]
    assert torch.equal(loaded.tensors["head.weight"], toy_model(0).state_dict()["head.weight"])


def test_pinned_digest_trusts_an_unsigned_bundle(signed_bundle):
    (signed_bundle / "manifest.sig").unlink()
    digest = sha256_hex((signed_bundle / "manifest.json").read_bytes())
    loaded = load_bundle(signed_bundle, None, pinned=frozenset({digest}))
    assert loaded.trusted and loaded.warnings == []
    refused("unsigned", load_bundle, signed_bundle, None, pinned=frozenset({"0" * 64}))


def test_key_rotation_two_signatures_one_trusted_key_suffices(tmp_path, signed_bundle, keys):
    from mouthpiece.checkpoints import TrustStore

    sign_bundle(signed_bundle, keys["b"].private_path)
    signers = json.loads((signed_bundle / "manifest.sig").read_bytes())["signatures"]
    assert [s["key_id"] for s in signers] == [keys["a"].key_id, keys["b"].key_id]
    for trusted in ("a", "b"):
        store = tmp_path / f"trust_{trusted}"
        TrustStore(store).add(keys[trusted].public_path)
        report = verify_bundle(signed_bundle, store)
        assert report.trusted
        assert [s["trusted"] for s in report.signers] == [trusted == "a", trusted == "b"]
    refused("untrusted", verify_bundle, signed_bundle, tmp_path / "empty")

    # Re-signing with the same key replaces its signature instead of adding a second one.
    sign_bundle(signed_bundle, keys["b"].private_path)
    assert len(json.loads((signed_bundle / "manifest.sig").read_bytes())["signatures"]) == 2


def test_one_broken_signature_among_several_is_refused(signed_bundle, trust_dir, keys):
    sign_bundle(signed_bundle, keys["b"].private_path)
    doc = json.loads((signed_bundle / "manifest.sig").read_bytes())
    second = bytearray(__import__("base64").b64decode(doc["signatures"][1]["signature"]))
    second[0] ^= 1
    doc["signatures"][1]["signature"] = __import__("base64").b64encode(bytes(second)).decode()
    (signed_bundle / "manifest.sig").write_bytes(canonical_json(doc))
    refused("bad_signature", verify_bundle, signed_bundle, trust_dir)  # the trusted one is fine


def test_sign_refuses_an_altered_bundle(signed_bundle, keys):
    flip(signed_bundle / "config.json", 2)
    refused("hash_mismatch", sign_bundle, signed_bundle, keys["b"].private_path)


# --- the file set --------------------------------------------------------------------------

def test_symlink_inside_the_bundle_is_refused(tmp_path, signed_bundle, trust_dir):
    os.symlink(signed_bundle / "config.json", signed_bundle / "extra.safetensors")
    refused("symlink", verify_bundle, signed_bundle, trust_dir)


def test_listed_file_replaced_by_a_symlink_to_identical_bytes_is_refused(tmp_path, signed_bundle, trust_dir):
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(signed_bundle / "model.safetensors", outside)
    os.symlink(outside, signed_bundle / "model.safetensors")
    refused("symlink", verify_bundle, signed_bundle, trust_dir)


@pytest.mark.parametrize("extra", ["notes.txt", ".hidden", "more.safetensors"])
def test_extra_file_is_refused(signed_bundle, trust_dir, extra):
    (signed_bundle / extra).write_bytes(b"x")
    error = refused("unexpected_file", verify_bundle, signed_bundle, trust_dir)
    assert extra in str(error)


def test_extra_folder_is_refused(signed_bundle, trust_dir):
    (signed_bundle / "sub").mkdir()
    refused("unexpected_file", verify_bundle, signed_bundle, trust_dir)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "manifest.json"])
def test_missing_file_is_refused(signed_bundle, trust_dir, name):
    (signed_bundle / name).unlink()
    error = refused("missing_file", verify_bundle, signed_bundle, trust_dir)
    assert name in str(error)


# --- compatibility -------------------------------------------------------------------------

def test_bundle_for_another_major_version_names_both_versions(tmp_path, keys, trust_dir):
    bundle = build_bundle(tmp_path / "future", toy_model(0).state_dict(), TOY_CONFIG, architecture=ARCH,
                          version="3.0.0", recipe=RECIPE, code_range=">=2.0,<3.0", name="toy")
    sign_bundle(bundle, keys["a"].private_path)
    error = refused("incompatible", load_bundle, bundle, trust_dir)
    assert ">=2.0,<3.0" in str(error) and f"mouthpiece {mouthpiece.__version__}" in str(error)


def test_other_architecture_is_refused(signed_bundle, trust_dir):
    error = refused("incompatible", load_bundle, signed_bundle, trust_dir, architecture="audio2motion-tcn/2")
    assert ARCH in str(error) and "audio2motion-tcn/2" in str(error)
    assert load_bundle(signed_bundle, trust_dir, architecture=ARCH).trusted


# --- what an attacker with their own key still cannot do -----------------------------------

def _resign(bundle, key_path, **files):
    """Replace files, rewrite their hashes, re-sign: what someone holding any key can do."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    for name, data in files.items():
        (bundle / name).write_bytes(data)
        manifest["files"][name] = {"sha256": sha256_hex(data), "size": len(data)}
    raw = canonical_json(manifest)
    (bundle / "manifest.json").write_bytes(raw)
    (bundle / "manifest.sig").write_bytes(encode_signatures([sign_manifest(raw, load_private_key(key_path))]))


def test_pickle_in_place_of_safetensors_is_never_unpickled(signed_bundle, trust_dir, keys):
    buffer = io.BytesIO()
    torch.save(toy_model(0).state_dict(), buffer)
    _resign(signed_bundle, keys["c"].private_path, **{"model.safetensors": buffer.getvalue()})
    refused("bad_weights", load_bundle, signed_bundle, trust_dir, allow_untrusted=True)


def test_config_not_matching_its_hash_is_refused(signed_bundle, trust_dir, keys):
    _resign(signed_bundle, keys["c"].private_path, **{"config.json": canonical_json({"hidden": 99})})
    refused("hash_mismatch", load_bundle, signed_bundle, trust_dir, allow_untrusted=True)


def test_non_canonical_manifest_is_refused(signed_bundle, trust_dir, keys):
    manifest = json.loads((signed_bundle / "manifest.json").read_bytes())
    raw = json.dumps(manifest, indent=2).encode()
    (signed_bundle / "manifest.json").write_bytes(raw)
    (signed_bundle / "manifest.sig").write_bytes(
        encode_signatures([sign_manifest(raw, load_private_key(keys["a"].private_path))]))
    refused("bad_manifest", verify_bundle, signed_bundle, trust_dir)


def test_checks_run_in_the_documented_order(tmp_path, signed_bundle, trust_dir, keys):
    """With several problems at once, the earliest check names the problem."""
    (signed_bundle / "extra.txt").write_text("x")  # 4. file set
    flip(signed_bundle / "config.json", 3)  # 3. hashes
    refused("hash_mismatch", verify_bundle, signed_bundle, trust_dir)
    refused("incompatible", verify_bundle, signed_bundle, trust_dir, architecture="other/1")  # 2.
    rewrite_manifest(signed_bundle, version="9.9.9")  # 1. signature
    refused("bad_signature", verify_bundle, signed_bundle, trust_dir, architecture="other/1")


def test_weights_split_over_several_files(signed_bundle, trust_dir, keys):
    from safetensors.torch import save

    release_id = json.loads((signed_bundle / "manifest.json").read_bytes())["release_id"]
    extra = save({"extra.scale": torch.arange(4.0)}, metadata={"release_id": release_id})
    _resign(signed_bundle, keys["a"].private_path, **{"extra.safetensors": extra})
    loaded = load_bundle(signed_bundle, trust_dir)
    assert torch.equal(loaded.tensors["extra.scale"], torch.arange(4.0)) and "head.weight" in loaded.tensors

    clash = save({"head.bias": torch.zeros(15)}, metadata={"release_id": release_id})
    _resign(signed_bundle, keys["a"].private_path, **{"extra.safetensors": clash})
    refused("bad_weights", load_bundle, signed_bundle, trust_dir)


def test_weights_signed_by_a_trusted_key_still_cannot_mix_releases(signed_bundle, trust_dir, keys):
    from safetensors.torch import save

    foreign = save({"extra.scale": torch.ones(2)}, metadata={"release_id": str(uuid.uuid4())})
    _resign(signed_bundle, keys["a"].private_path, **{"extra.safetensors": foreign})
    refused("release_mismatch", load_bundle, signed_bundle, trust_dir)
