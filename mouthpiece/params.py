"""GenerationParams: the per-call knobs (Sonic-compatible names), validated once where they enter.

Hard bounds raise `InputError` naming the parameter and its range; values outside the
recommended range are accepted with a warning. Nothing is silently clamped.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

from mouthpiece.types import InputError

# name → (hard_lo, hard_hi, recommended_lo, recommended_hi)
BOUNDS: dict[str, tuple[float, float, float, float]] = {
    "min_resolution": (128, 2048, 512, 2048),
    "expand_ratio": (0.0, 1.0, 0.3, 0.7),
    "inference_steps": (1, 100, 20, 30),
    "dynamic_scale": (0.5, 2.0, 1.0, 1.2),
    "motion_scale": (0.0, 2.0, 1.0, 1.1),
    "fps": (5, 60, 25, 25),
}
DURATION_TOLERANCE_S = 0.1  # larger audio/duration mismatches need --pad or --trim
MAX_DURATION_S = 1800.0  # 30 min; a plan may lower it (service)
MAX_SEED = 2**63 - 1
# Mouth motion from the viseme rules, or the rules blended with the learned model of a
# checkpoint (70 % rules + 30 % model where phones are recognised; known phones keep the
# rules). On recorded speech without a transcript the two tie (r 0.803 vs 0.802,
# docs/model.md); the model wins on held-out synthetic voices but costs a torch import
# (~1.5 s, a sixth of a 10-second clip's budget), so the rules are the default.
MOTION_SOURCES = ("rules", "model")


@dataclass(frozen=True)
class GenerationParams:
    """What a user may set for one generation. `seed=None` draws a random seed (recorded)."""

    duration: float | None = None
    pad: bool = False
    trim: bool = False
    min_resolution: int = 512
    expand_ratio: float = 0.5
    inference_steps: int = 25
    dynamic_scale: float = 1.0
    motion_scale: float = 1.0
    fps: int = 25
    seed: int | None = None
    smoothing: bool = True
    lip_sync_correction: bool = True
    face_index: int = 0
    full_frame: bool = True
    transcript: str | None = None
    motion: str = "rules"

    def validated(self, max_duration_s: float = MAX_DURATION_S) -> tuple["GenerationParams", list[str]]:
        """Check every bound; return (params with the seed fixed, warnings)."""
        warnings: list[str] = []
        for name, (lo, hi, rlo, rhi) in BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{name} must be a number, got {value!r}")
            if name in ("min_resolution", "inference_steps", "fps") and int(value) != value:
                raise InputError(f"{name} must be a whole number, got {value}")
            if not lo <= value <= hi:
                raise InputError(f"{name}={value} is out of range: allowed {lo:g}–{hi:g}")
            if not rlo <= value <= rhi:
                warnings.append(f"{name}={value:g} is outside the recommended range {rlo:g}–{rhi:g}")
        if self.min_resolution % 64:
            raise InputError(
                f"min_resolution={self.min_resolution} must be a multiple of 64 (e.g. 512, 576, 1024)"
            )
        if self.duration is not None and not 0 < self.duration <= max_duration_s:
            raise InputError(f"duration={self.duration} is out of range: allowed >0 and ≤ {max_duration_s:g} s")
        if self.pad and self.trim:
            raise InputError("--pad and --trim exclude each other: choose one")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise InputError(f"seed={self.seed} is out of range: allowed 0–{MAX_SEED}")
        if self.face_index < 0:
            raise InputError(f"face_index={self.face_index} must be ≥ 0")
        if self.motion not in MOTION_SOURCES:
            raise InputError(f"motion={self.motion!r} is not one of {', '.join(MOTION_SOURCES)}")
        if self.transcript is not None and not self.transcript.strip():
            raise InputError("transcript is empty: leave it out or give the spoken words")
        seed = self.seed if self.seed is not None else secrets.randbelow(2**31)
        return dataclasses.replace(self, seed=seed), warnings

    def resolve_duration(self, audio_s: float) -> float:
        """Output duration in seconds for audio of `audio_s` seconds (never silently truncates)."""
        if self.duration is None:
            return audio_s
        gap = self.duration - audio_s
        if abs(gap) <= DURATION_TOLERANCE_S:
            return self.duration
        if gap > 0 and not self.pad:
            raise InputError(
                f"duration={self.duration:g} s is longer than the audio ({audio_s:.2f} s): "
                "add --pad to fill with silence, or leave duration out"
            )
        if gap < 0 and not self.trim:
            raise InputError(
                f"duration={self.duration:g} s is shorter than the audio ({audio_s:.2f} s): "
                "add --trim to cut the audio, or leave duration out (never truncated silently)"
            )
        return self.duration

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
