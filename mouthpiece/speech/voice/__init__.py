"""voice: zero-shot voice adaptation of synthesized speech toward a reference clip.

Public API:
    analyze_reference(path, role="--voice") -> VoiceProfile   (validates: length, silence, one voice)
    adapt(samples, rate, target=VoiceProfile|None, style=Prosody|None, cache_key=...) -> Adaptation
    speaking_rate_ratio(style, acoustic_rate(phone_rate)) -> speed-up for engines with a rate knob
    embed(samples_16k) -> (256,) ; embed_many([samples_16k, ...]) -> [(256,), ...] (one batch)
    cosine(a, b) -> float
"""

from mouthpiece.speech.voice.adaptation import Adaptation, acoustic_rate, adapt
from mouthpiece.speech.voice.convert import speaking_rate_ratio
from mouthpiece.speech.voice.analysis import Prosody
from mouthpiece.speech.voice.embedding import cosine, embed, embed_many
from mouthpiece.speech.voice.reference import VoiceProfile, analyze_reference

__all__ = ["Adaptation", "Prosody", "VoiceProfile", "acoustic_rate", "adapt", "analyze_reference",
           "cosine", "embed", "embed_many", "speaking_rate_ratio"]
