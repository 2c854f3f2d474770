"""Rules vs learned model, measured with the engine's lip-sync figures (`evaluation.py`).

For each clip with reference phone timings, the mouth of each motion source drives the
landmarks of a real face (`FaceDeformer`, the renderer's own geometry), the inner-lip gap is
measured on them exactly as `evaluation.mouth_openings` measures it on a video, and
`lipsync_report` compares it with the reference timings: correlation, best lag, bilabial
closure, silence closure. Measuring on deformed landmarks instead of re-detected video frames
isolates motion quality from rendering and landmark-detection noise.

Sources compared:
  rules/recognised         build_track on pocketsphinx recognition (no transcript)
  model alone              the learned mouth alone (no transcript)
  rules+model/recognised   blend_learned_mouth's default without a transcript
  rules/known              build_track on the reference phones (transcript or TTS timings)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mouthpiece.evaluation import CLOSED_GAP_IOD, INNER_LIP_PAIRS, lipsync_report
from mouthpiece.motion import build_track
from mouthpiece.motion.learned import LearnedMotionModel, blend_learned_mouth
from mouthpiece.render.deform import FaceDeformer
from mouthpiece.speech import align_transcript, frame_features, recognize_phonemes
from mouthpiece.topology import inter_ocular
from mouthpiece.types import Audio, Landmarks, MotionTrack, PhonemeSegment

log = logging.getLogger(__name__)

EVAL_FPS = 25
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")  # Debian alsa-utils: recorded human speech


@dataclass
class Clip:
    name: str
    samples: np.ndarray  # (N,) float32 at 16 kHz
    reference: list[PhonemeSegment]  # the timings the figures are measured against
    transcript: str | None = None


def track_openings(track: MotionTrack, deformer: FaceDeformer) -> np.ndarray:
    """(T,) inner-lip gap in inter-ocular distances for every frame of `track`."""
    gaps = np.empty(track.n_frames)
    for k, row in enumerate(track.values):
        pts = deformer.deform(row)
        gap = np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in INNER_LIP_PAIRS])
        gaps[k] = gap / inter_ocular(pts)
    return gaps


def motion_sources(clip: Clip, model: LearnedMotionModel | None, seed: int = 0
                   ) -> dict[str, MotionTrack]:
    audio = Audio(clip.samples)
    n = max(1, int(round(audio.duration_s * EVAL_FPS)))
    features = frame_features(audio, EVAL_FPS, n)
    recognised = recognize_phonemes(audio)
    tracks = {
        "rules/recognised": build_track(recognised, features, n_frames=n, fps=EVAL_FPS, seed=seed),
        "rules/known": build_track(clip.reference, features, n_frames=n, fps=EVAL_FPS, seed=seed),
    }
    if model is not None:
        predicted = model.predict(features)
        tracks["model alone"] = blend_learned_mouth(tracks["rules/recognised"], predicted,
                                                    rules_weight=0.0)
        tracks["rules+model/recognised"] = blend_learned_mouth(tracks["rules/recognised"],
                                                               predicted)
    return tracks


def compare(clips: list[Clip], model: LearnedMotionModel | None, face: Landmarks,
            seed: int = 0) -> dict:
    """Pooled lip-sync figures per motion source over `clips` (see module docstring)."""
    deformer = FaceDeformer(face.points)
    pooled: dict[str, dict[str, list]] = {}
    for clip in clips:
        for source, track in motion_sources(clip, model, seed).items():
            report = lipsync_report(track_openings(track, deformer), clip.reference, EVAL_FPS)
            acc = pooled.setdefault(source, {"r": [], "lag": [], "bil": [], "sil": []})
            acc["r"].append(report.correlation)
            acc["lag"].append(report.best_lag_frames)
            if report.bilabial_count:
                acc["bil"].append((report.bilabial_closed, report.bilabial_count))
            if report.silence_frames:
                acc["sil"].append((report.silence_closed, report.silence_frames))
    return {source: _summarise(acc) for source, acc in pooled.items()}


def _summarise(acc: dict) -> dict:
    def weighted(pairs):
        if not pairs:
            return None
        total = sum(n for _, n in pairs)
        return round(float(sum(v * n for v, n in pairs) / total), 3)

    return {"correlation": round(float(np.mean(acc["r"])), 3),
            "mean_abs_lag_frames": round(float(np.mean(np.abs(acc["lag"]))), 2),
            "bilabial_closed": weighted(acc["bil"]),
            "bilabial_count": sum(n for _, n in acc["bil"]),
            "silence_closed": weighted(acc["sil"]),
            "clips": len(acc["r"]), "closed_gap_iod": CLOSED_GAP_IOD}


def held_out_clips(seed: int = 1000, per_voice: int = 4) -> list[Clip]:
    """Unseen synthetic voices with their exact phone timings."""
    from mouthpiece.training.augment import set_level, shift_segments
    from mouthpiece.training.corpus import utterances
    from mouthpiece.training.data import held_out_voices
    from mouthpiece.training.voices import synthesize

    rng = np.random.default_rng(seed)
    clips = []
    for voice in held_out_voices():
        for text in utterances("en", rng, per_voice, 6, 16):
            utt = synthesize(text, voice)
            pad = np.zeros(4000, np.float32)  # 0.25 s of silence at both ends
            samples = np.concatenate([pad, utt.samples, pad])
            segments = shift_segments(utt.segments, 0.25, len(samples) / 16000)
            clips.append(Clip(voice.label, set_level(samples, -22.0), segments, text))
    return clips


def alsa_speech_clips() -> list[Clip]:
    """Recorded human speech found offline: the ALSA speaker-test voice prompts
    ("Front Left", …) from Debian's alsa-utils, referenced by forced alignment of their
    known words (the best timing available for a real recording)."""
    from mouthpiece.media import load_audio

    clips = []
    for path in sorted(ALSA_SOUNDS.glob("*.wav")):
        words = path.stem.replace("_", " ")
        if words.lower() == "noise":
            continue
        audio = load_audio(path)
        pad = np.zeros(4000, np.float32)
        samples = np.concatenate([pad, audio.samples, pad]).astype(np.float32)
        reference = align_transcript(Audio(samples), words)
        clips.append(Clip(path.name, samples, reference, words))
    return clips
