"""A `.zip` of a bundle loads exactly like the folder; hostile archives are refused."""

from __future__ import annotations

import stat
import warnings
import zipfile

import pytest
import torch

from mouthpiece.checkpoints import CheckpointError, load_bundle, zip_bundle


def refused(code: str, fn, *args, **kwargs) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    return info.value


def members(bundle) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(bundle.iterdir())}


def write_zip(path, entries, prefix: str = "") -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which one test wants
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in entries:
                zf.writestr(prefix + name, data)


def test_zip_round_trip(tmp_path, signed_bundle, trust_dir):
    archive = zip_bundle(signed_bundle, tmp_path / "toy.zip")
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["config.json", "manifest.json", "manifest.sig", "model.safetensors"]
    from_zip = load_bundle(archive, trust_dir)
    from_dir = load_bundle(signed_bundle, trust_dir)
    assert from_zip.trusted and from_zip.sha256 == from_dir.sha256
    assert all(torch.equal(from_zip.tensors[k], v) for k, v in from_dir.tensors.items())


def test_zip_of_the_folder_itself_loads(tmp_path, signed_bundle, trust_dir):
    archive = tmp_path / "toy.zip"
    write_zip(archive, list(members(signed_bundle).items()), prefix="toy/")
    assert load_bundle(archive, trust_dir).trusted


@pytest.mark.parametrize("evil", ["../evil.safetensors", "/etc/evil.safetensors", "toy/../../x",
                                  "..\\evil.safetensors", "C:evil.safetensors"])
def test_zip_slip_is_refused(tmp_path, signed_bundle, trust_dir, evil):
    archive = tmp_path / "evil.zip"
    write_zip(archive, [*members(signed_bundle).items(), (evil, b"pwned")])
    refused("unsafe_path", load_bundle, archive, trust_dir)
    assert not (tmp_path.parent / "evil.safetensors").exists()


def test_duplicate_member_is_refused(tmp_path, signed_bundle, trust_dir):
    archive = tmp_path / "dup.zip"
    files = members(signed_bundle)
    write_zip(archive, [*files.items(), ("config.json", b'{"hidden":99}')])
    refused("unsafe_path", load_bundle, archive, trust_dir)


def test_symlink_member_is_refused(tmp_path, signed_bundle, trust_dir):
    archive = tmp_path / "link.zip"
    write_zip(archive, list(members(signed_bundle).items()))
    with zipfile.ZipFile(archive, "a") as zf:
        link = zipfile.ZipInfo("extra.safetensors")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    refused("symlink", load_bundle, archive, trust_dir)


@pytest.mark.parametrize("extra", ["notes.txt", "sub/model.safetensors"])
def test_extra_member_is_refused(tmp_path, signed_bundle, trust_dir, extra):
    archive = tmp_path / "extra.zip"
    write_zip(archive, [*members(signed_bundle).items(), (extra, b"x")])
    refused("unexpected_file", load_bundle, archive, trust_dir)


def test_altered_member_is_refused(tmp_path, signed_bundle, trust_dir):
    files = members(signed_bundle)
    weights = bytearray(files["model.safetensors"])
    weights[len(weights) // 2] ^= 1
    files["model.safetensors"] = bytes(weights)
    archive = tmp_path / "altered.zip"
    write_zip(archive, list(files.items()))
    refused("hash_mismatch", load_bundle, archive, trust_dir)


def test_member_over_the_size_limit_is_refused(tmp_path, signed_bundle, trust_dir, monkeypatch):
    import mouthpiece.checkpoints.archive as archive_module

    monkeypatch.setattr(archive_module, "MAX_FILE_BYTES", 1024)  # the weights are ~5 kB
    archive = zip_bundle(signed_bundle, tmp_path / "toy.zip")
    refused("too_large", load_bundle, archive, trust_dir)
