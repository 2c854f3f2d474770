"""Chunked recognition in a worker process: chunk plan and equivalence with one-shot decoding."""

import numpy as np

from mouthpiece.speech import frame_features, recognize_phonemes
from mouthpiece.speech.streaming import ChunkedRecognizer, plan_chunks
from mouthpiece.media import load_audio


def test_plan_covers_all_frames_and_cuts_in_pauses():
    fps = 25
    speech = np.ones(30 * fps)
    for start in (2.0, 7.0, 13.0, 20.0):  # 0.4 s pauses
        speech[int(start * fps):int((start + 0.4) * fps)] = 0
    spans = plan_chunks(speech, fps)
    assert spans[0][0] == 0 and spans[-1][1] == len(speech)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    for _, f1 in spans[:-1]:
        assert speech[f1] == 0  # every cut is inside a pause
    assert spans[0][1] < 3 * fps  # the first chunk is short (latency)


def test_plan_without_pauses_respects_max_length():
    fps = 25
    spans = plan_chunks(np.ones(40 * fps), fps)
    assert all((f1 - f0) <= 12 * fps for f0, f1 in spans)
    assert spans[-1][1] == 40 * fps


def test_worker_matches_direct_recognition(festival_speech):
    wav, _, _ = festival_speech
    audio = load_audio(wav)
    features = frame_features(audio, 25, round(audio.duration_s * 25))
    spans = plan_chunks(features.series["speech"], 25, min_s=1.0)
    assert len(spans) >= 2  # the fixture has a 0.6 s pause between its sentences
    seconds = [(a / 25, b / 25) for a, b in spans]
    with ChunkedRecognizer(audio, seconds) as recognizer:
        chunks = [recognizer.segments(i) for i in range(len(spans))]
    for (t0, t1), segments in zip(seconds, chunks):
        assert segments[0].start_s >= t0 - 1e-6 and segments[-1].end_s <= t1 + 1e-6
    phones = [s.phone for c in chunks for s in c if s.phone != "SIL"]
    direct = [s.phone for s in recognize_phonemes(audio) if s.phone != "SIL"]
    # same words either way, give or take a phone at a cut
    assert abs(len(phones) - len(direct)) <= 3
    assert sum(p in ("P", "B", "M") for p in phones) >= 8
