"""Real speech with exact phone timings (festival via the speech stage's reference TTS)."""

import shutil
import wave

import numpy as np
import pytest

from mouthpiece.motion import build_track
from mouthpiece.speech import frame_features, synthesize_with_timings
from mouthpiece.types import Audio, PhonemeSegment

pytestmark = pytest.mark.skipif(shutil.which("festival") is None, reason="needs festival")
TEXT = "My mom bought a pumpkin pie for the baby boy. But nobody ate it."


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    wav = tmp_path_factory.mktemp("tts") / "speech.wav"
    segs = synthesize_with_timings(TEXT, wav)
    with wave.open(str(wav)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0
    pause = np.zeros(16_000, np.float32)  # 1 s of silence after the speech (not in segs)
    return segs, Audio(np.concatenate([samples.astype(np.float32), pause]))


@pytest.mark.parametrize("fps", [25, 30])
def test_real_speech_closures_rest_and_no_spurious_sync_shift(speech, fps):
    segs, audio = speech
    n = int(round(audio.duration_s * fps))
    track = build_track(segs, frame_features(audio, fps, n), n_frames=n, fps=fps)
    centres = [round((s.start_s + s.end_s) / 2 * fps) for s in segs if s.phone in "PBM"]
    assert len(centres) >= 10
    assert np.mean([track["lip_press"][c] >= 0.9 and track["jaw_open"][c] <= 0.1
                    for c in centres]) >= 0.95
    assert track.meta["av_offset_applied_s"] == 0.0  # timings are exact: leave them
    times = np.arange(n) / fps
    pauses = [s for s in segs if s.phone == "SIL" and s.duration_s >= 0.15]
    pauses.append(PhonemeSegment("SIL", segs[-1].end_s, audio.duration_s))
    inside = np.zeros(n, bool)
    for s in pauses:
        inside |= (times >= s.start_s + 0.05) & (times < s.end_s - 0.05)
    assert inside.sum() >= 5 and np.all(track["jaw_open"][inside] <= 0.05)


def test_real_speech_80ms_late_timings_are_corrected(speech):
    segs, audio = speech
    fps = 25
    n = int(round(audio.duration_s * fps))
    feats = frame_features(audio, fps, n)
    late = [PhonemeSegment(s.phone, s.start_s + 0.08, s.end_s + 0.08) for s in segs]
    track = build_track(late, feats, n_frames=n, fps=fps)
    assert track.meta["av_offset_s"] == pytest.approx(0.08, abs=0.025)
    assert track.meta["av_offset_applied_s"] == pytest.approx(0.08)
    centres = [round((s.start_s + s.end_s) / 2 * fps) for s in segs if s.phone in "PBM"]
    assert np.mean([track["lip_press"][c] >= 0.9 for c in centres]) >= 0.9
