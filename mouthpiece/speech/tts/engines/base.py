"""The engine interface: every TTS engine turns chunks (text + dictionary hits) into audio
AND phone timings. Engines are optional (GPL or system packages), probed on use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mouthpiece.speech.g2p import Chunk
from mouthpiece.types import PhonemeSegment


@dataclass(frozen=True)
class EngineRequest:
    """What to say. `chunks`: normalised text and dictionary hits, in order. `rate`: speaking
    rate multiplier (> 1 faster). `voice`: engine-specific voice name or None (default).
    `pitch`: base pitch 0–100 for engines that have such a knob (espeak-ng), else ignored."""

    chunks: tuple[Chunk, ...]
    lang: str
    voice: str | None = None
    seed: int = 0
    rate: float = 1.0
    pitch: int | None = None


@dataclass
class EngineOutput:
    """`samples`: (N,) float32 mono at `sample_rate` Hz. `segments`: ARPAbet phones (or SIL)
    tiling [0, N / sample_rate], or None when the engine cannot time its phones (the caller
    force-aligns). `phonemes`: the phone string that was spoken, words separated by spaces."""

    samples: np.ndarray
    sample_rate: int
    segments: list[PhonemeSegment] | None
    phonemes: str
    warnings: list[str] = field(default_factory=list)


class Engine(Protocol):
    name: str
    licence: str

    def available(self) -> bool:
        """True when the engine's packages/binaries are installed."""

    def supports(self, lang: str) -> bool:
        """True when the engine can speak `lang` (ISO 639-1 code, e.g. "en", "zh", "de")."""

    def synthesize(self, request: EngineRequest) -> EngineOutput: ...
