"""build_track end to end: shape, ranges, inputs, fallbacks, speed, JSON round trip."""

import subprocess
import wave

import numpy as np
import pytest

from mouthpiece.motion import build_track
from mouthpiece.types import (
    CHANNEL_NAMES, MOTION_CHANNELS, AudioFeatures, InputError, MotionTrack, PhonemeSegment,
)
from tests.motion.synth import features, segments, sentence

FPS = 25


def test_exact_frame_count_all_channels_in_range_and_meta():
    segs = segments(sentence(2))
    for n in (1, 7, 60, int(segs[-1].end_s * FPS) + 50):  # shorter and longer than the phones
        track = build_track(segs, features(segs, n, FPS), n_frames=n, fps=FPS)
        assert track.values.shape == (n, 15) and track.channels == CHANNEL_NAMES
        assert np.all(np.isfinite(track.values))
        for name, (lo, hi, _) in MOTION_CHANNELS.items():
            assert track[name].min() >= lo and track[name].max() <= hi
        assert track.meta["n_segments"] == len(segs) and "av_offset_s" in track.meta
        assert "visemes" in track.meta["sources"] and "head_sampler" in track.meta["sources"]
    empty = build_track(segs, None, n_frames=0, fps=FPS)
    assert empty.values.shape == (0, 15)


def test_segments_past_the_end_are_ignored_and_unsorted_input_is_fine():
    segs = segments(sentence(2))
    n = 50  # 2 s: the clip ends mid-sentence
    full = build_track(segs, None, n_frames=n, fps=FPS)
    cut = build_track([s for s in segs if s.start_s < 2.0][::-1], None, n_frames=n, fps=FPS)
    assert np.allclose(full.values[:, :6], cut.values[:, :6])


def test_features_at_another_rate_and_missing_features_work():
    segs = segments(sentence())
    n = int(segs[-1].end_s * 30)
    at_30 = build_track(segs, features(segs, n, 30), n_frames=n, fps=30)
    feats_100 = features(segs, int(segs[-1].end_s * 100), 100)
    from_100 = build_track(segs, feats_100, n_frames=n, fps=30)
    assert np.corrcoef(at_30["jaw_open"], from_100["jaw_open"])[0, 1] > 0.95
    bare = build_track(segs, None, n_frames=n, fps=30)
    assert bare["jaw_open"].max() > 0.6 and bare["head_yaw"].std() > 0


@pytest.mark.parametrize("kwargs", [
    {"n_frames": -1}, {"fps": 0}, {"inference_steps": 0}, {"seed": -3}, {"seed": 1.5},
    {"dynamic_scale": -0.1}, {"motion_scale": float("nan")},
])
def test_bad_parameters_raise_input_error(kwargs):
    args = {"n_frames": 10, "fps": FPS} | kwargs
    with pytest.raises(InputError):
        build_track([], None, **args)


def test_low_confidence_phones_hand_the_lips_to_the_acoustic_cues():
    segs = segments(sentence(2))
    n = int(segs[-1].end_s * FPS)
    feats = features(segs, n, FPS)
    # garbage phones (another language): one long unknown phone per phrase, low confidence
    garbage = [PhonemeSegment("XX" if s.phone != "SIL" else "SIL", s.start_s, s.end_s, 0.1)
               for s in segs]
    track = build_track(garbage, feats, n_frames=n, fps=FPS)
    envelope = feats.series["open"] * feats.series["speech"]
    assert np.corrcoef(track["jaw_open"], envelope)[0, 1] > 0.8
    # phones missed entirely: the recogniser said silence over speech
    silent_phones = [PhonemeSegment("SIL", 0.0, n / FPS)]
    track = build_track(silent_phones, feats, n_frames=n, fps=FPS)
    assert np.corrcoef(track["jaw_open"], envelope)[0, 1] > 0.8
    assert track["jaw_open"].max() > 0.5


def _espeak_envelope(tmp_path, text, fps):
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(wav), text], check=True,
                   capture_output=True)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0
    hop = int(rate / fps)
    n = len(samples) // hop
    frames = samples[: n * hop].reshape(n, hop)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.clip(20 * np.log10(rms + 1e-5) / 50 + 1, 0, 1)  # 0 dB → 1, −50 dB → 0
    speech = (loud > 0.35).astype(np.float32)
    return n, AudioFeatures(fps, {"loudness": loud.astype(np.float32), "speech": speech})


def test_real_foreign_speech_without_phones_still_moves_the_lips(tmp_path):
    n, feats = _espeak_envelope(tmp_path, "Guten Morgen, wie geht es dir heute? Sehr gut.", FPS)
    track = build_track([], feats, n_frames=n, fps=FPS)
    speaking = feats.series["speech"] > 0.5
    jaw = track["jaw_open"]
    assert speaking.mean() > 0.3
    assert jaw[speaking].std() > 0.05  # moving, not frozen open
    assert jaw[speaking].mean() > 3 * jaw[~speaking].mean() + 0.05


def test_json_round_trip(tmp_path):
    segs = segments(sentence())
    n = int(segs[-1].end_s * FPS)
    track = build_track(segs, features(segs, n, FPS), n_frames=n, fps=FPS, seed=7)
    path = tmp_path / "track.json"
    track.save_json(path)
    back = MotionTrack.load_json(path)
    assert back.channels == track.channels and back.fps == track.fps
    assert np.allclose(back.values, track.values, atol=1e-5)
    assert back.meta == track.meta
