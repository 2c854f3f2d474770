"""motion: phoneme timings + acoustic features → MotionTrack (visemes with coarticulation,
loudness-driven jaw, stochastic head/expression sampler, blinks, smoothing, A/V sync)."""

from mouthpiece.motion.blinks import sample_blinks
from mouthpiece.motion.build import TrackBuilder, build_track, frame_series
from mouthpiece.motion.head import sample_head
from mouthpiece.motion.smoothing import smooth_track
from mouthpiece.motion.sync import correct_offset, estimate_offset
from mouthpiece.motion.visemes import VISEME_OF_PHONE, VISEMES, articulation

__all__ = [
    "TrackBuilder", "VISEMES", "VISEME_OF_PHONE", "articulation", "build_track", "correct_offset",
    "estimate_offset", "frame_series", "sample_blinks", "sample_head", "smooth_track",
]
