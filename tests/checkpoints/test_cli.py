"""`mouthpiece ckpt …` adapter, driven through a real argparse parser (as cli.py will)."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from mouthpiece.commands import ckpt
from mouthpiece.types import InputError


def run(argv: list[str]) -> int:
    """What cli.main does: parse, call func, InputError → exit 2."""
    parser = argparse.ArgumentParser(prog="mouthpiece")
    ckpt.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError:
        return 2


def test_keygen_trust_sign_verify(tmp_path, capsys, signed_template):
    bundle = shutil.copytree(signed_template, tmp_path / "bundle")
    (bundle / "manifest.sig").unlink()
    keydir, trust = tmp_path / "key", tmp_path / "trust"

    assert run(["ckpt", "keygen", "--out", str(keydir), "--json"]) == 0
    key = json.loads(capsys.readouterr().out)
    assert (keydir / "private.pem").stat().st_mode & 0o777 == 0o600

    assert run(["ckpt", "verify", str(bundle), "--trust-dir", str(trust)]) == 2  # unsigned
    assert run(["ckpt", "sign", str(bundle), "--key", str(keydir / "private.pem")]) == 0
    assert key["key_id"] in capsys.readouterr().out
    assert run(["ckpt", "verify", str(bundle), "--trust-dir", str(trust)]) == 2  # key not trusted yet
    assert run(["ckpt", "verify", str(bundle), "--trust-dir", str(trust), "--allow-untrusted"]) == 2
    capsys.readouterr()

    assert run(["ckpt", "trust", "add", str(keydir / "public.pub"), "--trust-dir", str(trust)]) == 0
    assert (trust / f"{key['key_id']}.pub").is_file()
    capsys.readouterr()
    assert run(["ckpt", "verify", str(bundle), "--trust-dir", str(trust), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["intact"] and report["trusted"]
    assert report["signers"] == [{"key_id": key["key_id"], "trusted": True}]

    # --data-dir finds DATA_DIR/trust
    assert run(["ckpt", "verify", str(bundle), "--data-dir", str(tmp_path)]) == 0
    assert "intact and trusted" in capsys.readouterr().out


def test_verify_json_reports_the_refusal(tmp_path, capsys, signed_template, trust_dir):
    bundle = shutil.copytree(signed_template, tmp_path / "bundle")
    (bundle / "extra.txt").write_text("x")
    assert run(["ckpt", "verify", str(bundle), "--trust-dir", str(trust_dir), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["code"]) == (False, "unexpected_file") and "extra.txt" in out["error"]


def test_inspect_shows_manifest_and_check(tmp_path, capsys, signed_template, trust_dir, keys):
    assert run(["ckpt", "inspect", str(signed_template), "--trust-dir", str(trust_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["manifest"]["id"] == "toy" and info["signatures"] == [keys["a"].key_id]
    assert info["check"]["intact"] and info["check"]["trusted"]

    assert run(["ckpt", "inspect", str(signed_template), "--trust-dir", str(trust_dir)]) == 0
    text = capsys.readouterr().out
    assert "toy 1.0.0" in text and "intact, trusted" in text and "model.safetensors" in text

    bundle = shutil.copytree(signed_template, tmp_path / "bundle")
    (bundle / "config.json").write_text("{}")
    assert run(["ckpt", "inspect", str(bundle), "--trust-dir", str(trust_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["check"]["code"] == "size_mismatch"


def test_zip_and_trust_list(tmp_path, capsys, signed_template, trust_dir, keys):
    assert run(["ckpt", "zip", str(signed_template), str(tmp_path / "toy.zip")]) == 0
    assert run(["ckpt", "verify", str(tmp_path / "toy.zip"), "--trust-dir", str(trust_dir)]) == 0
    capsys.readouterr()
    assert run(["ckpt", "trust", "list", "--trust-dir", str(trust_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["key_ids"] == [keys["a"].key_id]


def test_user_mistakes_are_input_errors(tmp_path, signed_template):
    assert run(["ckpt", "verify", str(tmp_path / "nope")]) == 2
    assert run(["ckpt", "keygen", "--out", str(tmp_path / "k")]) == 0
    assert run(["ckpt", "keygen", "--out", str(tmp_path / "k")]) == 2  # never overwrites a key
    (tmp_path / "not-a-key.pem").write_text("hello")
    assert run(["ckpt", "sign", str(signed_template), "--key", str(tmp_path / "not-a-key.pem")]) == 2
    assert run(["ckpt", "trust", "add", str(tmp_path / "k" / "private.pem"), "--trust-dir", str(tmp_path)]) == 2


@pytest.mark.parametrize("argv", [["ckpt"], ["ckpt", "trust"], ["ckpt", "sign", "x"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == 2
