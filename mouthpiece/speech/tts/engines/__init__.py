"""TTS engines behind one interface (`Engine`), chosen per language unless named.

Preference for English: piper (neural) → festival → flite → espeak; for every other
language espeak-ng (Mandarin through pinyin). GPL engines (piper, espeak-ng) are optional
extras and are only imported when used.
"""

from __future__ import annotations

import functools

from mouthpiece.speech.tts.engines.base import Engine, EngineOutput, EngineRequest
from mouthpiece.types import InputError

PREFERENCE: tuple[str, ...] = ("piper", "festival", "flite", "espeak")


@functools.lru_cache(maxsize=1)
def all_engines() -> dict[str, Engine]:
    """Every known engine (instances are cached: they hold loaded models)."""
    from mouthpiece.speech.tts.engines.espeak_engine import EspeakEngine
    from mouthpiece.speech.tts.engines.piper_engine import PiperEngine
    from mouthpiece.speech.tts.engines.system_engines import FestivalEngine, FliteEngine

    engines = [PiperEngine(), FestivalEngine(), FliteEngine(), EspeakEngine()]
    return {e.name: e for e in engines}


def choose_engine(lang: str, name: str | None = None) -> Engine:
    """The named engine (checked), or the most natural installed engine for `lang`."""
    engines = all_engines()
    if name is not None:
        if name not in engines:
            raise InputError(f"unknown TTS engine {name!r}: choose one of {', '.join(engines)}")
        engine = engines[name]
        if not engine.available():
            raise InputError(f"TTS engine {name!r} is not installed (see docs/speech.md)")
        if not engine.supports(lang):
            raise InputError(f"TTS engine {name!r} cannot speak language {lang!r}")
        return engine
    for candidate in PREFERENCE:
        engine = engines[candidate]
        if engine.available() and engine.supports(lang):
            return engine
    raise InputError(f"no installed TTS engine speaks language {lang!r}: use en, zh or an "
                     "espeak-ng language code (e.g. de, fr, es), and install espeak-ng")


__all__ = ["PREFERENCE", "Engine", "EngineOutput", "EngineRequest", "all_engines", "choose_engine"]
