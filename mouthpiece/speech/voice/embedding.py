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


def embed(samples: np.ndarray) -> np.ndarray:
    """(256,) unit-norm speaker embedding of 16 kHz mono speech (no VAD trimming: callers
    pass speech; resemblyzer averages 1.6 s windows)."""
    samples = np.asarray(samples, np.float32)
    if len(samples) < SAMPLE_RATE // 2:
        samples = np.pad(samples, (0, SAMPLE_RATE // 2 - len(samples)))
    peak = float(np.max(np.abs(samples))) or 1.0
    with _lock:
        return _encoder().embed_utterance(samples / peak * 0.9)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
