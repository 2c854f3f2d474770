"""Mouth channels: closures, vowel heights, rounding, tucks, rest, continuity, scaling."""

import numpy as np
import pytest

from mouthpiece.motion import build_track
from tests.motion.synth import features, segments, sentence

FPS = 25


def _track(spec, fps=FPS, **kw):
    segs = segments(spec)
    n = int(round(segs[-1].end_s * fps))
    return segs, build_track(segs, features(segs, n, fps), n_frames=n, fps=fps, **kw)


def _at(track, t):
    return int(round(t * track.fps))


@pytest.mark.parametrize("fps", [25, 30, 60])
@pytest.mark.parametrize("smoothing", [True, False])
def test_every_bilabial_closes_the_lips_with_the_jaw_nearly_shut(fps, smoothing):
    segs, track = _track(sentence(), fps=fps, smoothing=smoothing)
    bilabials = [s for s in segs if s.phone in ("P", "B", "M")]
    assert len(bilabials) == 9 and min(s.duration_s for s in bilabials) <= 0.06
    for s in bilabials:
        k = _at(track, 0.5 * (s.start_s + s.end_s))
        assert track["lip_press"][k] >= 0.9, (s, track["lip_press"][k - 2:k + 3])
        assert track["jaw_open"][k] <= 0.1, (s, track["jaw_open"][k - 2:k + 3])


def test_short_50ms_bilabial_between_open_vowels_still_closes():
    segs, track = _track([("SIL", 0.3), ("AA", 0.2), ("P", 0.05), ("AA", 0.2), ("SIL", 0.3)])
    k = _at(track, 0.525)
    assert track["lip_press"][k] >= 0.9 and track["jaw_open"][k] <= 0.1
    # …and the vowels around it are open, not half-closed by the /p/
    for t in (0.4, 0.65):
        assert track["jaw_open"][_at(track, t)] > 0.6
        assert track["lip_press"][_at(track, t)] < 0.2


def test_vowel_heights_rounding_and_tuck():
    segs, track = _track([("SIL", 0.4), ("HH", 0.08), ("AA", 0.25), ("SIL", 0.5), ("HH", 0.08),
                          ("IY", 0.25), ("SIL", 0.5), ("HH", 0.08), ("UW", 0.25), ("SIL", 0.5),
                          ("F", 0.12), ("EH", 0.2), ("SIL", 0.4)])
    centre = {s.phone: _at(track, 0.5 * (s.start_s + s.end_s)) for s in segs if s.phone != "SIL"}
    jaw, rnd, wide = track["jaw_open"], track["lip_round"], track["lip_wide"]
    assert jaw[centre["AA"]] > 0.7
    assert jaw[centre["AA"]] > jaw[centre["IY"]] + 0.4
    assert wide[centre["IY"]] > 0.6 and wide[centre["IY"]] > wide[centre["UW"]] + 0.4
    assert rnd[centre["UW"]] > 0.8 and rnd[centre["UW"]] > rnd[centre["AA"]] + 0.6
    assert track["lower_lip_tuck"][centre["F"]] >= 0.85
    assert track["lower_lip_tuck"][centre["EH"]] < 0.3
    assert jaw[centre["F"]] < 0.2


def test_long_silence_rests_the_mouth():
    segs, track = _track(sentence())
    mouth = track.values[:, :6]  # articulators; the expression smile may stay on
    silent = [k for k in range(track.n_frames)
              for s in segs if s.phone == "SIL" and s.start_s <= k / FPS < s.end_s]
    # closed: no jaw gap, no teeth shown, no rounded aperture (pressed or tucked lips are closed)
    closed = ((track["jaw_open"] <= 0.05) & (track["upper_lip_up"] <= 0.1)
              & (track["lip_round"] <= 0.2))[silent]
    assert closed.mean() >= 0.9, closed.mean()
    # the interior of a pause is exactly at rest
    pause = next(s for s in segs if s.phone == "SIL" and s.start_s > 1)
    k = _at(track, 0.5 * (pause.start_s + pause.end_s))
    assert np.all(mouth[k] == 0)


def test_time_not_covered_by_segments_is_rest():
    segs, track = _track([("M", 0.08), ("AA", 0.2)])
    longer = build_track(segs, None, n_frames=40, fps=FPS)  # 1.6 s, phones end at 0.28 s
    assert longer.n_frames == 40
    assert np.all(longer.values[20:, :6] == 0) and np.all(longer["smile"][20:] < 0.1)
    assert longer["jaw_open"][_at(longer, 0.18)] > 0.5


def test_mouth_moves_continuously():
    for fps in (25, 60):
        _, track = _track(sentence(2), fps=fps)
        steps = np.abs(np.diff(track.values[:, :7], axis=0))
        # physiological jaw speed: a full opening takes ≥ 0.1 s (3 frames at 25 fps)
        assert steps[:, 0].max() <= 10.0 / fps + 1e-6, (fps, steps[:, 0].max())
        assert steps[:, [1, 2, 6]].max() <= 0.6
    # head and expression are smooth
    head = np.abs(np.diff(track.values[:, 9:], axis=0))
    assert head[:, 1:4].max() < 0.5  # degrees per frame


def test_dynamic_scale_scales_jaw_but_not_closures():
    spec = sentence()
    _, base = _track(spec, smoothing=False)
    _, half = _track(spec, smoothing=False, dynamic_scale=0.5)
    _, big = _track(spec, smoothing=False, dynamic_scale=1.2)
    open_frames = base["jaw_open"] > 0.2
    ratio = half["jaw_open"][open_frames] / base["jaw_open"][open_frames]
    # ≈ half; a little more where the full-size jaw was held back by its speed limit
    assert 0.45 <= np.median(ratio) <= 0.65, np.median(ratio)
    assert np.all(half["jaw_open"] <= base["jaw_open"] + 1e-6)
    assert big["jaw_open"].sum() > 1.1 * base["jaw_open"].sum()
    assert np.array_equal(half["lip_press"] >= 0.9, base["lip_press"] >= 0.9)


def test_louder_speech_opens_the_jaw_wider():
    segs = segments([("SIL", 0.3), ("HH", 0.06), ("AH", 0.3), ("SIL", 0.4)])
    n = int(round(segs[-1].end_s * FPS))
    quiet, loud = features(segs, n, FPS), features(segs, n, FPS)
    quiet.series["loudness"] *= 0.2
    jq = build_track(segs, quiet, n_frames=n, fps=FPS)["jaw_open"].max()
    jl = build_track(segs, loud, n_frames=n, fps=FPS)["jaw_open"].max()
    assert jl > jq * 1.2 and jq > 0.3
