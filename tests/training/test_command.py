"""`mouthpiece train` adapter: a tiny real run prints one JSON object and writes a bundle."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from mouthpiece.checkpoints import verify_bundle
from mouthpiece.commands import train as train_command
from mouthpiece.types import InputError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="mouthpiece")
    train_command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_tiny_training_run_writes_a_bundle(tmp_path, capsys):
    out = tmp_path / "bundle"
    args = _parse(["train", "--out", str(out), "--seed", "4", "--espeak", "2", "--piper", "0",
                   "--steps", "2", "--batch", "2", "--no-eval", "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bundle"] == str(out) and result["signed"] is False
    report = verify_bundle(out, allow_untrusted=True)
    assert report.manifest["recipe"]["seed"] == 4 and not report.trusted


def test_no_data_is_an_input_error(tmp_path):
    args = _parse(["train", "--out", str(tmp_path / "b"), "--espeak", "0", "--piper", "0"])
    with pytest.raises(InputError, match="no training data"):
        args.func(args)
