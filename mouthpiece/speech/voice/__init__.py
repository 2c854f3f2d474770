"""voice: zero-shot voice adaptation of synthesized speech toward a reference clip.

Public API:
    analyze_reference(path, role="--voice") -> VoiceProfile   (validates: length, silence, one voice)
    adapt(samples, rate, target=VoiceProfile|None, style=Prosody|None, cache_key=...) -> Adaptation
    embed(samples_16k) -> (256,) ; cosine(a, b) -> float
"""

from mouthpiece.speech.voice.adapt import Adaptation, adapt
from mouthpiece.speech.voice.analysis import Prosody
from mouthpiece.speech.voice.embedding import cosine, embed
from mouthpiece.speech.voice.reference import VoiceProfile, analyze_reference

__all__ = ["Adaptation", "Prosody", "VoiceProfile", "adapt", "analyze_reference", "cosine", "embed"]
