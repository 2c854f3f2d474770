"""Chunked recognition in a worker process: chunk plan and equivalence with one-shot decoding."""

import re
import time

import numpy as np
import pytest

from mouthpiece.media import load_audio
from mouthpiece.speech import frame_features, recognize_phonemes
from mouthpiece.speech.streaming import ChunkedRecognizer, plan_chunks
from mouthpiece.types import Audio, PhonemeSegment


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


def _hold_the_gil_on_the_second_chunk(chunk: Audio) -> list[PhonemeSegment]:
    """Stand-in for pocketsphinx: the second chunk runs long inside one C call that keeps the
    GIL (a backtracking regex), as word decoding does."""
    if chunk.duration_s > 1.5:
        re.match(r"(a+)+$", "a" * 23 + "b")
    return [PhonemeSegment("SIL", 0.0, chunk.duration_s)]


def test_a_chunk_is_delivered_while_the_next_one_is_decoded():
    """Results must not wait for the worker's next (GIL-holding) decoding call: with a
    multiprocessing.Queue the first chunk arrived only when the second was done."""
    audio = Audio(np.zeros(16000 * 3, np.float32))
    with ChunkedRecognizer(audio, task=_hold_the_gil_on_the_second_chunk, preload=()) as worker:
        start = time.perf_counter()
        worker.plan([(0.0, 1.0), (1.0, 3.0)])
        first = worker.segments(0)
        first_s = time.perf_counter() - start
        worker.segments(1)
        both_s = time.perf_counter() - start
    assert first[0].end_s == 1.0
    assert first_s < 0.5 * both_s, (first_s, both_s)


def test_spans_are_planned_after_the_worker_started(festival_speech):
    wav, _, _ = festival_speech
    audio = load_audio(wav)
    with ChunkedRecognizer(audio) as worker:  # decoders load meanwhile
        worker.plan([(0.0, audio.duration_s)])
        segments = worker.segments(0)
        with pytest.raises(RuntimeError, match="already planned"):
            worker.plan([(0.0, 1.0)])
    assert sum(s.phone in ("P", "B", "M") for s in segments) >= 8


def _fails(chunk: Audio) -> list[PhonemeSegment]:
    raise ValueError("no phones here")


def test_a_worker_failure_is_raised_in_the_caller():
    audio = Audio(np.zeros(16000, np.float32))
    with ChunkedRecognizer(audio, [(0.0, 1.0)], task=_fails, preload=()) as worker:
        with pytest.raises(RuntimeError, match="ValueError: no phones here"):
            worker.segments(0)


def test_closing_an_unplanned_worker_is_quick():
    start = time.perf_counter()
    ChunkedRecognizer(Audio(np.zeros(16000, np.float32)), preload=()).close()
    assert time.perf_counter() - start < 5.0


def test_two_workers_give_the_same_phones_as_one(festival_speech):
    wav, _, _ = festival_speech
    audio = load_audio(wav)
    features = frame_features(audio, 25, round(audio.duration_s * 25))
    seconds = [(a / 25, b / 25) for a, b in plan_chunks(features.series["speech"], 25, min_s=1.0)]
    found = {}
    for workers in (1, 2):
        with ChunkedRecognizer(audio, seconds, workers=workers) as recognizer:
            found[workers] = [recognizer.segments(i) for i in range(len(seconds))]
    assert found[1] == found[2]
