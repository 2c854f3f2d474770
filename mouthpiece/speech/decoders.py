"""pocketsphinx decoders, built lazily once per process and shared (each behind a lock, as a
decoder is not re-entrant), plus the audio conversion they need."""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from mouthpiece.types import SAMPLE_RATE, Audio, InputError

log = logging.getLogger(__name__)

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
def word_aligner() -> _Locked:
    """Forced-alignment decoder for recognised words: like `aligner`, but it starts with an
    empty dictionary and learns the pronunciations of the words it is given from the word
    recognizer's (see `recognize_phonemes`). Reading CMUdict was 0.12 s of the aligner's
    0.13 s start-up, on the way to the first rendered frame."""
    with tempfile.TemporaryDirectory(prefix="mouthpiece-dict-") as tmp:
        empty = Path(tmp) / "empty.dict"
        empty.write_text("")
        return _decoder(lm=None, dict=str(empty), **ALIGN_CONFIG)


def pronunciations(locked: _Locked, words: list[str]) -> dict[str, str]:
    """Dictionary entries of `words` in `locked`'s dictionary, alternates included
    ({"the": "DH AH", "the(2)": "DH IY"}); words it does not know are left out."""
    entries = {}
    with locked.lock:
        for word in dict.fromkeys(words):
            variant, n = word, 1
            while (phones := locked.decoder.lookup_word(variant)) is not None:
                entries[variant] = phones
                n += 1
                variant = f"{word}({n})"
    return entries


# Word search limits. Measured on 3 festival passages (41 s) and 4 sentences: at most 2000
# active HMMs per frame and the 2 best Gaussians per senone (defaults 30000 and 4) cut word
# decoding from ~0.22 to ~0.15 s per second of audio, with the same word error rate. Then on
# 18 piper/festival/espeak utterances (87 s): the first pass alone (no flat-lexicon second
# pass, no lattice best path) with at most 5 word exits per frame, CPU 0.181 → 0.098 s per
# second of audio, word error rate 35.9 → 35.1 % (ds=2 or topn=1 cost 3–6 points). Then
# 1000 active HMMs instead of 2000: 10–20 % less word-decoding CPU on 5 festival passages
# (55 s), the phones as good for the mouth (openness correlation with the true phones 0.870
# vs 0.872, the same 64 of 71 bilabials found); narrower beams lost bilabials (0.73–0.86).
WORD_SEARCH = {"maxhmmpf": 1000, "topn": 2, "fwdflat": False, "bestpath": False, "maxwpf": 5}


@functools.lru_cache(maxsize=1)
def word_recognizer() -> _Locked:
    """Word decoder with the shipped English trigram model and CMUdict (its LM words)."""
    return _decoder(lm=_model_paths()["lm"], dict=word_dictionary(), **WORD_SEARCH)


def word_dictionary_path() -> Path:
    """Where this installation keeps `word_dictionary` (named for the pocketsphinx release
    whose model it comes from)."""
    return (Path(sys.prefix) / "share" / "mouthpiece" / "speech"
            / f"cmudict-lm-words-{version('pocketsphinx')}.dict")


def word_dictionary() -> str:
    """CMUdict cut to the words of the language model: all the word search can ever
    hypothesise (the same words on 9 test passages), with 40 % fewer entries to read on
    the way to the first frame (decoder start 0.44 → 0.32 s). Derived once per installation
    (set-up does it); the full CMUdict where that cannot be written."""
    path = word_dictionary_path()
    if not path.is_file():
        try:
            write_word_dictionary(path)
        except OSError as exc:
            log.info("using the full CMUdict: cannot write %s (%s)", path, exc)
            return _model_paths()["dict"]
    return str(path)


def write_word_dictionary(path: Path) -> None:
    """Write `word_dictionary` to `path` (atomically; deterministic: CMUdict's order)."""
    import pocketsphinx

    paths = _model_paths()
    model = pocketsphinx.NGramModel.readfile(paths["lm"])
    unknown = model.prob(["<unk>"])  # what the model gives a word it does not have
    known: dict[str, bool] = {}
    kept = []
    with open(paths["dict"], encoding="utf-8") as entries:
        for line in entries:
            word = line.split(" ", 1)[0].split("(", 1)[0]
            if word not in known:
                known[word] = model.prob([word]) != unknown
            if known[word]:
                kept.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_text("".join(kept), encoding="utf-8")
    os.replace(partial, path)


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
