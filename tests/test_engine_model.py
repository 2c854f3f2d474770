"""--motion model end to end: a tiny model trained here → signed bundle → verified → generate,
with the checkpoint recorded in the result and the audit log; untrusted bundles need a flag."""

from __future__ import annotations

import json
import shutil

import pytest

from mouthpiece.checkpoints import generate_keypair
from mouthpiece.engine import generate
from mouthpiece.media import probe_video
from mouthpiece.motion.learned import Audio2MouthConfig
from mouthpiece.params import GenerationParams
from mouthpiece.training import DataRecipe, TrainingRun, TrainParams, run
from mouthpiece.types import InputError

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(bundle, trust dir) of a model trained for a few steps and signed with a test key."""
    tmp = tmp_path_factory.mktemp("model")
    keys = generate_keypair(tmp / "keys")
    (tmp / "cache").mkdir()
    job = TrainingRun(out=tmp / "bundle", command=["mouthpiece", "train", "--steps", "3"],
                      recipe=DataRecipe(seed=2, n_espeak=3, n_piper=0),
                      params=TrainParams(steps=3, batch=2, crop_frames=30, seed=2),
                      config=Audio2MouthConfig(width=16, hidden=12, n_conv=1), evaluate=False,
                      key=keys.private_path, data_cache=tmp / "cache")
    bundle = run(job).bundle
    trust = tmp / "trust"
    trust.mkdir()
    shutil.copy(keys.public_path, trust / "test.pub")
    return bundle, trust


def test_trained_bundle_generates_and_is_audited(tmp_path, trained, portrait_path, festival_speech):
    bundle, trust = trained
    wav, _, _ = festival_speech
    audit = tmp_path / "audit.jsonl"
    out = tmp_path / "m.mp4"
    result = generate(portrait_path, wav, out, GenerationParams(min_resolution=128, seed=1, motion="model"),
                      checkpoint=bundle, trust_dir=trust, audit_log=audit)
    assert result.checkpoint["trusted"] and result.checkpoint["version"]
    assert not any("trusted" in w for w in result.warnings)
    assert probe_video(out)["frames"] == result.frames
    record = json.loads(audit.read_text())
    assert record["checkpoint"] == result.checkpoint and record["params"]["motion"] == "model"


def test_untrusted_bundle_needs_the_flag_and_warns(tmp_path, trained, portrait_path, festival_speech):
    bundle, _ = trained
    wav, _, _ = festival_speech
    params = GenerationParams(min_resolution=128, seed=1, motion="model")
    with pytest.raises(InputError, match="trusted"):
        generate(portrait_path, wav, tmp_path / "a.mp4", params, checkpoint=bundle)
    assert not (tmp_path / "a.mp4").exists()
    result = generate(portrait_path, wav, tmp_path / "b.mp4", params, checkpoint=bundle,
                      allow_untrusted=True)
    assert not result.checkpoint["trusted"]
    assert any("not signed by a trusted key" in w for w in result.warnings)


def test_shipped_checkpoint_is_pinned(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    result = generate(portrait_path, wav, tmp_path / "s.mp4",
                      GenerationParams(min_resolution=128, seed=1, motion="model"))
    assert result.checkpoint["trusted"] and not any("trusted" in w for w in result.warnings)
