"""pocketsphinx decoders, built lazily once per process and shared (each behind a lock, as a
decoder is not re-entrant), plus the audio conversion they need."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass

import numpy as np

from mouthpiece.types import SAMPLE_RATE, Audio, InputError

FRAME_S = 0.01  # pocketsphinx frame period (frate = 100)
PAD_S = 0.3  # silence padded around the audio; alignment is much better with it
# Measured: forced alignment needs far wider beams than recognition to never prune the
# true path; with these the median phone-start error is ~11 ms on synthetic speech.
ALIGN_BEAMS = {"beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-100}
# bestpath must be off: with it, the second (state-level) pass fails on every utterance after
# the first one a decoder sees ("Alignment failed in frame N").
ALIGN_CONFIG = {**ALIGN_BEAMS, "bestpath": False}


def fresh_front_end(decoder) -> None:
    """Reset the feature front end before an utterance.

    Its noise-removal estimate otherwise carries over from the previous utterance, so the same
    audio decoded to different words depending on what the process decoded before — fatal for
    "same inputs + seed → same frames". `reinit_feat` costs ~0.1 ms.
    """
    decoder.reinit_feat()


def decode_utterance(decoder, pcm: bytes) -> None:
    """Run one whole utterance through `decoder` (caller holds its lock), fresh front end."""
    fresh_front_end(decoder)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


@dataclass
class _Locked:
    decoder: object  # pocketsphinx.Decoder
    lock: threading.Lock


def _model_paths() -> dict[str, str]:
    import pocketsphinx

    root = os.path.join(pocketsphinx.get_model_path(), "en-us")
    return {
        "hmm": os.path.join(root, "en-us"),
        "dict": os.path.join(root, "cmudict-en-us.dict"),
        "lm": os.path.join(root, "en-us.lm.bin"),
        "phone_lm": os.path.join(root, "en-us-phone.lm.bin"),
    }


def _decoder(**kwargs) -> _Locked:
    import pocketsphinx

    paths = _model_paths()
    config = {"hmm": paths["hmm"], "dict": paths["dict"], "loglevel": "FATAL", **kwargs}
    return _Locked(pocketsphinx.Decoder(**config), threading.Lock())


@functools.lru_cache(maxsize=1)
def aligner() -> _Locked:
    """Forced-alignment decoder (no language model, wide beams)."""
    return _decoder(lm=None, **ALIGN_CONFIG)


@functools.lru_cache(maxsize=1)
def word_recognizer() -> _Locked:
    """Word decoder with the shipped English trigram model and CMUdict."""
    return _decoder(lm=_model_paths()["lm"])


@functools.lru_cache(maxsize=1)
def phone_recognizer() -> _Locked:
    """Allphone decoder (context-independent phones, phone n-gram model).

    A low LM weight (lw=1 instead of 6.5) lets the acoustics speak: phone error rate on
    festival English 38 % instead of 49 %, and far fewer phones swallowed as SIL in German.
    """
    return _decoder(lm=None, allphone=_model_paths()["phone_lm"], beam=1e-60, pbeam=1e-60, lw=1.0)


def padded_pcm(audio: Audio, pad_s: float = PAD_S) -> bytes:
    """16-bit PCM bytes of the audio with `pad_s` of near-silence on both sides.

    The padding carries 1-LSB deterministic noise: exact digital zeros give -inf log energy
    frames that pocketsphinx's cepstral normalisation handles badly.
    """
    if audio.sample_rate != SAMPLE_RATE:
        raise InputError(f"speech analysis needs {SAMPLE_RATE} Hz audio, got {audio.sample_rate}")
    samples = np.asarray(audio.samples, dtype=np.float32).reshape(-1)  # (N,)
    pad = np.random.default_rng(0).integers(-1, 2, int(round(pad_s * SAMPLE_RATE)))
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767)
    return np.concatenate([pad, pcm, pad]).astype("<i2").tobytes()
