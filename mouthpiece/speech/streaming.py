"""Phoneme recognition in worker processes, chunk by chunk, so rendering can start early.

Word decoding is the most expensive stage without a transcript (~0.15 s per second of audio)
and pocketsphinx holds the GIL, so it runs in forked processes while the caller renders the
chunks already recognised: the CPU cores work at the same time, and memory stays flat for
long audio. Chunks are cut in the middle of pauses, where the mouth rests anyway.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal

import numpy as np

from mouthpiece.speech import decoders
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


WORD_DECODERS = (decoders.word_recognizer, decoders.word_aligner)  # what recognize_phonemes needs


def _recognise_share(audio: Audio, task, spans_s, k: int, n: int, results) -> None:
    """Spans k, k + n, … of `spans_s`, in order, each posted as (index, segments | error)."""
    rate = audio.sample_rate
    for index in range(k, len(spans_s), n):
        t0, t1 = spans_s[index]
        try:
            chunk = Audio(audio.samples[round(t0 * rate):round(t1 * rate)], rate)
            found = task(chunk)
            results.send((index, [PhonemeSegment(s.phone, s.start_s + t0, s.end_s + t0,
                                                 s.confidence) for s in found]))
        except Exception as exc:  # reported to the parent, which raises it
            results.send((index, f"{type(exc).__name__}: {exc}"))
            return


def _worker(audio: Audio, task, preload, jobs, results: list) -> None:
    """First worker process: load the decoders at once (while the parent prepares), wait for
    the spans, then fork the other workers — they inherit the loaded decoders, copy-on-write,
    instead of loading their own (~0.3 s of CPU each) — and recognise share 0 itself."""
    os.setpgid(0, 0)  # its own process group, so the parent can stop the forked ones too
    try:
        for load in preload:
            load()
        spans_s = jobs.recv()
    except EOFError:  # the parent closed without planning: nothing to do
        return
    except Exception as exc:
        results[0].send((0, f"{type(exc).__name__}: {exc}"))
        return
    n, children = len(results), []
    for k in range(1, n):
        pid = os.fork()
        if pid == 0:  # worker k: keeps only its own pipe
            for j, end in enumerate(results):
                if j != k:
                    end.close()
            try:
                _recognise_share(audio, task, spans_s, k, n, results[k])
            finally:
                os._exit(0)
        children.append(pid)
        results[k].close()
    _recognise_share(audio, task, spans_s, 0, n, results[0])
    for pid in children:
        os.waitpid(pid, 0)


class ChunkedRecognizer:
    """Recognise spans of `audio` (seconds) in `workers` worker processes (worker k takes
    spans k, k + workers, …); `segments(i)` waits for span i and returns its phones in
    seconds of the whole audio.

    The first worker starts, and loads the decoders (~0.3 s), as soon as this is built, so
    that start-up overlaps the caller's own preparation; the spans are given then or later
    with `plan`, and the other workers are forked from the first once it has them.
    `task(chunk_audio)` makes the phones of one span (default: `recognize_phonemes`);
    `preload`: the decoder factories to call before the first span.
    Results come back through pipes written by the workers themselves: a
    `multiprocessing.Queue` sends from a feeder thread, which the GIL-holding decoder stalled
    until the next chunk's decoding ended (measured: chunk 0 delivered 3.4 s after it was
    ready).
    """

    def __init__(self, audio: Audio, spans_s: list[tuple[float, float]] | None = None,
                 task=recognize_phonemes, preload=WORD_DECODERS, workers: int = 1) -> None:
        context = multiprocessing.get_context("fork")  # the audio is shared, not pickled
        pipes = [context.Pipe(duplex=False) for _ in range(workers)]  # (read, write) each
        self._results = [read for read, _ in pipes]
        jobs_end, self._jobs = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_worker, args=(audio, task, preload, jobs_end, [w for _, w in pipes]),
            daemon=True, name="mouthpiece-phonemes")
        self._process.start()
        with contextlib.suppress(OSError):  # also set by the child; whichever runs first
            os.setpgid(self._process.pid, self._process.pid)
        for _, write in pipes:
            write.close()  # the workers' ends: EOF here once they exit
        jobs_end.close()
        self._ready: dict[int, list[PhonemeSegment] | str] = {}
        self._planned = False
        if spans_s is not None:
            self.plan(spans_s)

    def plan(self, spans_s: list[tuple[float, float]]) -> None:
        """Give the workers their spans (once)."""
        if self._planned:
            raise RuntimeError("the recognizer's spans are already planned")
        self._planned = True
        self._jobs.send([(float(t0), float(t1)) for t0, t1 in spans_s])

    def segments(self, index: int) -> list[PhonemeSegment]:
        results = self._results[index % len(self._results)]
        while index not in self._ready:
            try:
                got, value = results.recv()  # EOFError once its worker has exited
            except EOFError:
                raise RuntimeError("the phoneme recognition worker died") from None
            self._ready[got] = value
        value = self._ready.pop(index)
        if isinstance(value, str):
            raise RuntimeError(f"phoneme recognition failed: {value}")
        return value

    def close(self) -> None:
        """Stop the workers (all of them: they share the first one's process group)."""
        self._jobs.close()
        if self._process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
        self._process.join(timeout=5)
        for results in self._results:
            results.close()

    def __enter__(self) -> "ChunkedRecognizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
