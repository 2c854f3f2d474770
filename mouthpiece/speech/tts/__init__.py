"""tts: offline text-to-speech with exact phone timings, voice cloning and prosody transfer.

Public API:
    synthesize(text, *, lang="en", voice=None, emotion_from=None, g2p_dict=None, seed=0,
               engine=None, sample_rate=24000, engine_voice=None) -> Synthesis
    Synthesis: .samples, .sample_rate, .segments, .phonemes, .report, .duration_s,
               .save_wav(path), .analysis_audio()
    available_engines() -> {name: {"available": bool, "licence": str}}
Engines load lazily (piper's model on first use, ~2–5 s); nothing heavy happens on import.
"""

from mouthpiece.speech.tts.synthesis import (
    MAX_TEXT_CHARS, SAMPLE_RATES, Synthesis, normalize_lang, synthesize,
)


def available_engines() -> dict[str, dict]:
    """Each engine's availability and licence."""
    from mouthpiece.speech.tts.engines import all_engines

    return {name: {"available": e.available(), "licence": e.licence}
            for name, e in all_engines().items()}


__all__ = ["MAX_TEXT_CHARS", "SAMPLE_RATES", "Synthesis", "available_engines", "normalize_lang",
           "synthesize"]
