"""Speaker embeddings (resemblyzer's GE2E d-vector, 256-d, weights shipped in the package).

resemblyzer's pretrained state dict is loaded by resemblyzer itself with `torch.load` from its
own installed package directory (a file installed by pip, not user input).
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from mouthpiece.types import SAMPLE_RATE

_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _encoder():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad's pkg_resources deprecation notice
        from resemblyzer import VoiceEncoder

        return VoiceEncoder("cpu", verbose=False)


def _prepare(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, np.float32)
    if len(samples) < SAMPLE_RATE // 2:
        samples = np.pad(samples, (0, SAMPLE_RATE // 2 - len(samples)))
    peak = float(np.max(np.abs(samples))) or 1.0
    return samples / peak * 0.9


def embed(samples: np.ndarray) -> np.ndarray:
    """(256,) unit-norm speaker embedding of 16 kHz mono speech (no VAD trimming: callers
    pass speech; resemblyzer averages 1.6 s windows)."""
    with _lock:
        return _encoder().embed_utterance(_prepare(samples))


def embed_many(clips: list[np.ndarray]) -> list[np.ndarray]:
    """`embed` of each clip, with all their 1.6 s windows in one forward pass of the encoder
    (the same windows and averaging as resemblyzer's `embed_utterance`, several times faster
    than one call per clip on a CPU)."""
    import torch
    from resemblyzer import audio

    encoder = _encoder()
    batches, counts = [], []
    for clip in clips:
        wav = _prepare(clip)
        wav_slices, mel_slices = encoder.compute_partial_slices(len(wav), 1.3, 0.75)
        wav = np.pad(wav, (0, max(0, wav_slices[-1].stop - len(wav))))
        mel = audio.wav_to_mel_spectrogram(wav)
        batches += [mel[s] for s in mel_slices]
        counts.append(len(mel_slices))
    with _lock, torch.no_grad():
        partials = encoder(torch.from_numpy(np.array(batches))).cpu().numpy()
    out, start = [], 0
    for n in counts:
        raw = partials[start:start + n].mean(axis=0)
        out.append(raw / np.linalg.norm(raw))
        start += n
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
