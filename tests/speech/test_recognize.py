import numpy as np

from mouthpiece.speech import BILABIALS, frame_features, recognize_phonemes

from .conftest import assert_tiles


def _edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, y in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return row[-1]


def test_recognition_without_transcript(bob):
    audio, reference = bob
    segments = recognize_phonemes(audio)
    assert_tiles(segments, audio.duration_s)
    ref = [s.phone for s in reference if s.phone != "SIL"]
    got = [s.phone for s in segments if s.phone != "SIL"]
    assert _edit_distance(got, ref) / len(ref) < 0.3  # measured 5 % over 8 festival sentences

    # Lips must close at the bilabials: a recognised P/B/M segment or the closure cue.
    fps = 25
    closure = frame_features(audio, fps, int(np.ceil(audio.duration_s * fps))).series["closure"]
    centres = [(r.start_s + r.end_s) / 2 for r in reference if r.phone in BILABIALS]
    hits = [
        any(s.phone in BILABIALS and s.start_s <= c < s.end_s for s in segments)
        or closure[int(c * fps)] > 0.5
        for c in centres
    ]
    assert np.mean(hits) >= 0.8  # measured 100 % (97 % from phones alone) on festival speech


def test_non_english_speech_still_gives_timed_phones(espeak_speech):
    audio = espeak_speech("de", "Guten Morgen, wie geht es dir heute? Ich kaufe ein Brot.")
    segments = recognize_phonemes(audio)
    assert_tiles(segments, audio.duration_s)
    speech = [s for s in segments if s.phone != "SIL"]
    assert len(speech) >= 15  # measured 26 phones (allphone fallback)
    assert sum(s.duration_s for s in speech) > 0.3 * audio.duration_s  # measured ~45 %
