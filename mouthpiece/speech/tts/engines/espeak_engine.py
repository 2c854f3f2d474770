"""espeak-ng through its C library (ctypes): ~100 languages, always available on Debian
(`espeak-ng` / `libespeak-ng1`, GPL-3.0). Phoneme events give exact phone start samples.

Mandarin: Debian's espeak-ng has no Han dictionary (it reads characters as "Chinese letter"),
so Han text is converted to numbered pinyin (pypinyin) and spoken with `cmn-latn-pinyin`;
Latin words and ARPAbet dictionary entries inside Chinese text switch to `en-us`.

The library keeps state between utterances (its pitch flutter phase, libc `rand()`), so the
same request spoke differently depending on what the process said before. Every request is
therefore spoken in a freshly forked child of a process that never synthesizes itself: the
same request gives the same samples, in a batch as in a single call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import re
import threading
from dataclasses import dataclass

import numpy as np

from mouthpiece.speech.g2p import (
    PhoneChunk, TextChunk, arpabet_to_espeak, han_to_pinyin, pinyin_to_arpabet,
)
from mouthpiece.speech.g2p.mandarin import HAN
from mouthpiece.speech.tts.engines.base import EngineOutput, EngineRequest
from mouthpiece.speech.tts.timeline import phone_string, segments_from_ipa_spans

log = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA = 0x1, 0x2
_CHARS_UTF8, _PHONEMES = 0x1, 0x100
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3
_DEFAULT_PITCH = 50
_DEFAULT_WPM = 175  # espeak-ng's default speaking rate, words per minute
_VOICE_FOR_LANG = {"en": "en-us", "zh": "cmn-latn-pinyin"}
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_CJK_PUNCT = str.maketrans({"。": ".", "，": ",", "、": ",", "；": ";", "：": ":", "！": "!",
                            "？": "?", "“": '"', "”": '"', "（": "(", "）": ")"})


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class _Piece:
    """One espeak_Synth call: text in one voice; `phonemes`: the text holds [[…]] input."""

    voice: str
    text: str
    plan: str  # what this piece says, for --phonemes-out (pinyin / ARPAbet / text)


class EspeakEngine:
    """espeak-ng formant synthesis for any language espeak-ng has a voice for."""

    name = "espeak"
    native_rate = True
    licence = "espeak-ng GPL-3.0-or-later (system library libespeak-ng1)"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lib = None
        self._rate = 22_050
        self._callback = _Callback(self._on_audio)  # kept alive as long as the engine
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []

    def available(self) -> bool:
        return ctypes.util.find_library("espeak-ng") is not None

    def _load(self):
        if self._lib is None:
            name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
            lib = ctypes.CDLL(name)
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                         _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA)
            if rate <= 0:
                raise RuntimeError("espeak-ng failed to initialise (no espeak-ng-data?)")
            lib.espeak_SetSynthCallback(self._callback)
            self._lib, self._rate = lib, rate
        return self._lib

    def voice_for(self, lang: str) -> str:
        return _VOICE_FOR_LANG.get(lang, lang)

    def supports(self, lang: str) -> bool:
        if not self.available() or not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", lang):
            return False
        with self._lock:
            return self._load().espeak_SetVoiceByName(self.voice_for(lang).encode()) == 0

    def _on_audio(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((name, int(event.sample)))
            i += 1
        return 0

    def _speak(self, piece: _Piece, rate: float, pitch: int
               ) -> tuple[np.ndarray, list[tuple[str, int]]]:
        lib = self._load()
        if lib.espeak_SetVoiceByName(piece.voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {piece.voice!r}")
        lib.espeak_SetParameter(_PARAM_RATE, int(round(_DEFAULT_WPM * rate)), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks, self._events = [], []
        data = piece.text.encode("utf-8")
        lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8 | _PHONEMES, None, None)
        lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return (pcm.astype(np.float32) / 32768.0), list(self._events)

    def _speak_all(self, pieces: list[_Piece], rate: float, pitch: int
                   ) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
        """All pieces, one after another: (samples, (IPA token, start, end) sample spans)."""
        audio, spans, offset = [], [], 0  # offset: samples
        for piece in pieces:
            samples, events = self._speak(piece, rate, pitch)
            for k, (name, start) in enumerate(events):
                end = events[k + 1][1] if k + 1 < len(events) else len(samples)
                spans.append((name, offset + start, offset + max(start, end)))
            audio.append(samples)
            offset += len(samples)
        return (np.concatenate(audio) if audio else np.zeros(0, np.float32)), spans

    def _speak_in_child(self, pieces: list[_Piece], rate: float, pitch: int
                        ) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
        """`_speak_all` in a forked child (see the module note); its errors are re-raised."""
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)

        def child() -> None:
            try:
                send.send(("ok", self._speak_all(pieces, rate, pitch)))
            except Exception as exc:  # handed to the parent, which raises it
                send.send(("error", f"{exc}"))

        process = context.Process(target=child, daemon=True, name="mouthpiece-espeak")
        process.start()
        send.close()
        try:
            status, value = receive.recv()
        except EOFError:
            raise RuntimeError("the espeak-ng process died") from None
        finally:
            receive.close()
            process.join()
        if status != "ok":
            raise ValueError(value)
        return value

    def synthesize(self, request: EngineRequest) -> EngineOutput:
        pieces = _pieces(request, self.voice_for(request.lang), request.voice)
        pitch = _DEFAULT_PITCH if request.pitch is None else int(np.clip(request.pitch, 0, 100))
        with self._lock:
            samples, spans = self._speak_in_child(pieces, request.rate, pitch)
        if not len(samples):
            raise ValueError("espeak-ng produced no audio for this text")
        segments = segments_from_ipa_spans(spans, self._rate, len(samples))
        plan = " ".join(p.plan for p in pieces if p.plan)
        phonemes = plan if request.lang == "zh" else phone_string(segments)
        return EngineOutput(samples, self._rate, segments, phonemes)


def _pieces(request: EngineRequest, base_voice: str, voice_override: str | None) -> list[_Piece]:
    """Cut the request into single-voice espeak calls (merging neighbours of the same voice)."""
    main = voice_override or base_voice
    english = "en-us" if not main.startswith("en") else main
    raw: list[tuple[str, str, str]] = []  # (voice, text, plan)
    for chunk in request.chunks:
        if isinstance(chunk, PhoneChunk):
            if chunk.kind == "pinyin" and base_voice == "cmn-latn-pinyin":
                raw.append((main, " ".join(chunk.phones), " ".join(chunk.phones)))
            else:
                arpabet = list(chunk.phones) if chunk.kind == "arpabet" else [
                    p for s in chunk.phones for p in pinyin_to_arpabet(s)]
                voice = main if main.startswith("en") else english
                raw.append((voice, f" [[{arpabet_to_espeak(arpabet)}]] ", " ".join(arpabet)))
        elif isinstance(chunk, TextChunk):
            if base_voice == "cmn-latn-pinyin":
                raw.extend(_mandarin_pieces(chunk.text, main, english))
            else:
                raw.append((main, chunk.text.replace("[[", "[ ["), chunk.text.strip()))
    pieces: list[_Piece] = []
    for voice, text, plan in raw:
        if pieces and pieces[-1].voice == voice:
            last = pieces.pop()
            text, plan = last.text + " " + text, (last.plan + " " + plan).strip()
        pieces.append(_Piece(voice, text, plan))
    return [p for p in pieces if p.text.strip()]


def _mandarin_pieces(text: str, cmn_voice: str, en_voice: str) -> list[tuple[str, str, str]]:
    out = []
    for item in han_to_pinyin(text):
        if HAN.search(item) is None and not re.fullmatch(r"[a-zü]+[1-5]", item):
            # a non-Han run: Latin words go to English, punctuation stays (pauses)
            cursor = 0
            for match in _LATIN_WORD.finditer(item):
                before = item[cursor:match.start()].translate(_CJK_PUNCT)
                if before.strip():
                    out.append((cmn_voice, before, ""))
                out.append((en_voice, match.group(0), match.group(0)))
                cursor = match.end()
            rest = item[cursor:].translate(_CJK_PUNCT)
            if rest.strip():
                out.append((cmn_voice, rest, ""))
        else:
            out.append((cmn_voice, item, item))
    return out
