"""The learned audio→mouth model: inference API, causality, checkpoint round trip, blending."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from mouthpiece.checkpoints import build_bundle, generate_keypair, load_bundle, sign_bundle
from mouthpiece.motion import build_track
from mouthpiece.motion.learned import (
    ARCHITECTURE, Audio2MouthConfig, LearnedMotionModel, blend_learned_mouth, build_network,
)
from mouthpiece.speech import frame_features
from mouthpiece.types import MOUTH_CHANNELS, Audio, InputError, PhonemeSegment

RECIPE = {"command": ["mouthpiece", "train", "--steps", "1"], "seed": 3, "data": {"examples": 0}}


def tiny_model(seed: int = 0) -> LearnedMotionModel:
    torch.manual_seed(seed)
    base = Audio2MouthConfig(width=16, hidden=12, n_conv=1)
    config = Audio2MouthConfig(**{**base.__dict__, "input_mean": (0.0,) * base.n_inputs,
                                  "input_std": (1.0,) * base.n_inputs})
    return LearnedMotionModel(config, build_network(config))


@pytest.fixture(scope="module")
def speech_features():
    """Real speech (espeak-ng) → features at 25 fps."""
    import subprocess
    import tempfile
    import wave

    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/s.wav"
        subprocess.run(["espeak-ng", "-w", path, "Bob bought a big map for Pam."], check=True)
        with wave.open(path) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
            rate = w.getframerate()
    from scipy.signal import resample_poly

    samples = resample_poly(pcm / 32768.0, 16000, rate).astype(np.float32)
    audio = Audio(np.concatenate([np.zeros(8000, np.float32), samples]))
    return audio


def test_predict_shapes_range_and_other_fps(speech_features):
    model = tiny_model()
    for fps in (25, 30, 12):
        n = int(round(speech_features.duration_s * fps))
        out = model.predict(frame_features(speech_features, fps, n))
        assert set(out) == set(MOUTH_CHANNELS)
        for series in out.values():
            assert series.shape == (n,) and np.all((series >= 0) & (series <= 1))


def test_prediction_is_causal_within_the_lookahead(speech_features):
    model = tiny_model(1)
    fps, n = 25, int(round(speech_features.duration_s * 25))
    a = model.predict(frame_features(speech_features, fps, n))
    cut = n // 2
    changed = speech_features.samples.copy()
    changed[int((cut + 1 + model.config.lookahead) / fps * 16000):] *= -3.0  # later audio only
    b = model.predict(frame_features(Audio(changed), fps, n))
    # Frames before the cut never hear the changed audio; the clip-level mel reference moves,
    # which is the one non-causal input (see raw_inputs), so compare with a tolerance.
    early = slice(0, cut - 1)
    assert max(np.abs(a[c][early] - b[c][early]).max() for c in MOUTH_CHANNELS) < 0.05
    assert max(np.abs(a[c][cut + 3:] - b[c][cut + 3:]).max() for c in MOUTH_CHANNELS) > 1e-4


def test_signed_bundle_round_trip_predicts_the_same(tmp_path, speech_features):
    model = tiny_model(2)
    keys = generate_keypair(tmp_path / "keys")
    bundle = build_bundle(tmp_path / "b", model.network.state_dict(), model.config.to_dict(),
                          architecture=ARCHITECTURE, version="0.0.1", recipe=RECIPE)
    sign_bundle(bundle, keys.private_path)
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(keys.public_path, trust / "k.pub")
    loaded = load_bundle(bundle, trust)
    assert loaded.trusted
    again = LearnedMotionModel.from_checkpoint(loaded)
    n = int(round(speech_features.duration_s * 25))
    feats = frame_features(speech_features, 25, n)
    a, b = model.predict(feats), again.predict(feats)
    assert all(np.array_equal(a[c], b[c]) for c in MOUTH_CHANNELS)


def test_wrong_architecture_is_refused(tmp_path):
    model = tiny_model()
    bundle = build_bundle(tmp_path / "b", model.network.state_dict(), model.config.to_dict(),
                          architecture="something-else/1", version="0.0.1", recipe=RECIPE)
    with pytest.raises(InputError, match="needs 'audio2mouth-gru/1'"):
        LearnedMotionModel.from_checkpoint(load_bundle(bundle, allow_untrusted=True))


def _speech_segments():
    spec = [("SIL", 0.4), ("B", 0.07), ("AA", 0.2), ("M", 0.08), ("AE", 0.2), ("P", 0.08),
            ("SIL", 0.6), ("F", 0.1), ("AY", 0.2), ("V", 0.08), ("SIL", 0.5)]
    out, t = [], 0.0
    for phone, dur in spec:
        out.append(PhonemeSegment(phone, t, t + dur))
        t += dur
    return out, t


def test_blend_keeps_the_rules_guarantees_when_phones_are_known():
    segs, end = _speech_segments()
    fps = 25
    n = int(round(end * fps))
    track = build_track(segs, None, n_frames=n, fps=fps, lip_sync_correction=False)
    wide_open = {c: np.full(n, 1.0 if c == "jaw_open" else 0.0, np.float32)
                 for c in MOUTH_CHANNELS}  # a model that never closes the mouth
    out = blend_learned_mouth(track, wide_open, segs, rules_weight=0.5)
    for s in segs:
        c = round((s.start_s + s.end_s) / 2 * fps)
        if s.phone in ("P", "B", "M"):
            assert out["lip_press"][c] >= 0.9 and out["jaw_open"][c] <= 0.1
        if s.phone == "SIL" and s.duration_s >= 0.5:
            assert out["jaw_open"][c] <= 0.02
    # Without known phones the model's mouth is used as it is (jaw speed-limited only) …
    alone = blend_learned_mouth(track, wide_open, rules_weight=0.0)
    assert alone.meta["mouth_source"] == "model"
    assert np.all(alone["jaw_open"][n // 2:] > 0.99) and np.all(alone["lip_press"] == 0)
    # … and by default mixed with the rules' mouth, without phone constraints.
    mixed = blend_learned_mouth(track, wide_open)
    assert mixed.meta["mouth_source"] == "rules+model"
    assert np.allclose(mixed["lip_press"], 0.7 * track["lip_press"], atol=1e-5)
    # By default known phones keep the rules' mouth as it was.
    same = blend_learned_mouth(track, wide_open, segs)
    assert np.allclose(same["jaw_open"], track["jaw_open"], atol=1e-6)
    # Head, blinks and the rest of the track are untouched.
    assert np.array_equal(alone["head_yaw"], track["head_yaw"])
