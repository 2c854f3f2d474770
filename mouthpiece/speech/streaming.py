"""Phoneme recognition in a worker process, chunk by chunk, so rendering can start early.

Word decoding is the most expensive stage without a transcript (~0.15 s per second of audio)
and pocketsphinx holds the GIL, so it runs in a forked process while the caller renders the
chunks already recognised: the two CPU cores work at the same time, and memory stays flat
for long audio. Chunks are cut in the middle of pauses, where the mouth rests anyway.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue

import numpy as np

from mouthpiece.speech.recognize import recognize_phonemes
from mouthpiece.types import Audio, PhonemeSegment

log = logging.getLogger(__name__)

MIN_CHUNK_S = 3.0  # shorter chunks lose language-model context and pay more start-up
FIRST_MIN_CHUNK_S = 1.0  # the first chunk is pure latency: keep it short
MAX_CHUNK_S = 12.0  # longer ones delay the frames after them
MIN_PAUSE_S = 0.2  # a cut needs at least this much non-speech
SPEECH_THRESHOLD = 0.5


def plan_chunks(speech: np.ndarray, fps: float, min_s: float = MIN_CHUNK_S,
                max_s: float = MAX_CHUNK_S, first_min_s: float = FIRST_MIN_CHUNK_S
                ) -> list[tuple[int, int]]:
    """Frame spans [f0, f1) covering all `len(speech)` frames, cut inside pauses.

    `speech`: (T,) speech-activity probability per frame. A span closes at the middle of
    the first pause (≥ MIN_PAUSE_S) after `min_s`; with no pause before `max_s` (and more
    than `max_s` left) it closes at the quietest frame (the first span may close after `first_min_s`). The last span absorbs
    a remainder shorter than half of `min_s`."""
    n = len(speech)
    quiet = speech < SPEECH_THRESHOLD
    min_pause = max(int(round(MIN_PAUSE_S * fps)), 1)
    cuts = []  # frame indices at the middle of each pause
    start = None
    for k in range(n + 1):
        if k < n and quiet[k]:
            start = k if start is None else start
        elif start is not None:
            if k - start >= min_pause and start > 0 and k < n:
                cuts.append((start + k) // 2)
            start = None
    spans, f0 = [], 0
    lo, hi = int(min_s * fps), int(max_s * fps)
    while n - f0 > lo + lo // 2:
        least = int(first_min_s * fps) if not spans else lo
        usable = [c for c in cuts if f0 + least <= c <= f0 + hi]
        if usable:
            f1 = usable[0]
        elif n - f0 <= hi:
            break
        else:
            window = speech[f0 + lo:min(f0 + hi, n)]
            f1 = f0 + lo + int(np.argmin(window))
        if n - f1 < lo // 2:
            break
        spans.append((f0, f1))
        f0 = f1
    spans.append((f0, n))
    return spans


def _worker(audio: Audio, spans_s: list[tuple[float, float]], results) -> None:
    """Child process: recognise each span in order and post (index, segments | error)."""
    rate = audio.sample_rate
    for index, (t0, t1) in enumerate(spans_s):
        try:
            chunk = Audio(audio.samples[round(t0 * rate):round(t1 * rate)], rate)
            found = recognize_phonemes(chunk)
            results.put((index, [PhonemeSegment(s.phone, s.start_s + t0, s.end_s + t0, s.confidence)
                                 for s in found]))
        except Exception as exc:  # reported to the parent, which raises it
            results.put((index, f"{type(exc).__name__}: {exc}"))
            return


class ChunkedRecognizer:
    """Recognise `spans_s` (seconds) of `audio` in a worker process; `segments(i)` waits for
    chunk i (in order) and returns its phones in seconds of the whole audio."""

    def __init__(self, audio: Audio, spans_s: list[tuple[float, float]]) -> None:
        context = multiprocessing.get_context("fork")  # the audio is shared, not pickled
        self._results = context.Queue()
        self._process = context.Process(target=_worker, args=(audio, spans_s, self._results),
                                        daemon=True, name="mouthpiece-phonemes")
        self._process.start()
        self._ready: dict[int, list[PhonemeSegment] | str] = {}

    def segments(self, index: int) -> list[PhonemeSegment]:
        while index not in self._ready:
            try:
                got, value = self._results.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    raise RuntimeError("the phoneme recognition worker died") from None
                continue
            self._ready[got] = value
        value = self._ready.pop(index)
        if isinstance(value, str):
            raise RuntimeError(f"phoneme recognition failed: {value}")
        return value

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        self._results.close()

    def __enter__(self) -> "ChunkedRecognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
