"""generate(): the one orchestration of a generation — validate → face → speech → motion → render → mux.

Frames are streamed from the renderer to the encoder one at a time, so memory does not grow
with the length of the audio.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from mouthpiece import __version__
from mouthpiece.checkpoints import AuditLog, audit_record
from mouthpiece.face import build_rig
from mouthpiece.media import VideoWriter, load_audio, load_image
from mouthpiece.motion import TrackBuilder
from mouthpiece.motion.learned import blend_learned_mouth
from mouthpiece.params import GenerationParams
from mouthpiece.render import Renderer
from mouthpiece.speech import align_transcript, decoders, frame_features
from mouthpiece.speech.streaming import ChunkedRecognizer, plan_chunks
from mouthpiece.types import Audio, AudioFeatures, InputError, MotionTrack, PhonemeSegment

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]  # (stage, fraction 0..1 of that stage)
# Two recognition workers take alternate chunks. With one, rendering waited for the second
# chunk (often long: the first pause after 3 s) while a core idled; the second worker's
# decoder start-up (~0.35 s of CPU) costs less than that wait.
RECOGNITION_WORKERS = 2


@dataclass
class GenerationResult:
    """What one generation produced; `to_json()` is the CLI's `--json` object (CONTRACT.md)."""

    out: str
    frames: int
    fps: int
    duration_s: float
    audio_s: float
    compute_s: float
    resolution: tuple[int, int]
    checkpoint: dict
    params: dict
    warnings: list[str]
    timings_s: dict[str, float] = field(default_factory=dict)
    phonemes: str = ""
    av_offset_s: float = 0.0
    speech: dict | None = None  # the text-to-speech report, for text input

    def to_json(self) -> dict:
        return {
            "out": self.out,
            "frames": self.frames,
            "fps": self.fps,
            "duration_s": round(self.duration_s, 4),
            "audio_s": round(self.audio_s, 4),
            "compute_s": round(self.compute_s, 3),
            "rtf": round(self.compute_s / self.duration_s, 4),
            "resolution": list(self.resolution),
            "checkpoint": self.checkpoint,
            "params": self.params,
            "warnings": self.warnings,
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "phoneme_source": self.phonemes,
            "av_offset_s": round(self.av_offset_s, 4),
            **({"speech": self.speech} if self.speech is not None else {}),
        }


def rules_checkpoint() -> dict:
    """Identity of the built-in rule-based motion model: a digest of the motion stage's source."""
    import mouthpiece.motion as motion_pkg

    digest = hashlib.sha256()
    for path in sorted(Path(motion_pkg.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"id": "builtin-rules", "version": __version__, "sha256": digest.hexdigest(),
            "trusted": True}


def _fit_audio(audio: Audio, n_samples: int) -> Audio:
    """Pad with silence or trim so the analysis audio covers exactly the output duration
    (a view of the samples when nothing is padded: 38 MB per 10 minutes not copied)."""
    samples = audio.samples[:n_samples]
    if len(samples) < n_samples:
        samples = np.pad(samples, (0, n_samples - len(samples)))
    return Audio(samples.astype(np.float32, copy=False), audio.sample_rate)


def generate(
    image_path: str | Path,
    audio_path: str | Path,
    out_path: str | Path,
    params: GenerationParams,
    *,
    motion_in: MotionTrack | None = None,
    motion_out: str | Path | None = None,
    progress: Progress | None = None,
    audit_log: str | Path | None = None,
    user: str | None = None,
    checkpoint: str | Path | None = None,
    trust_dir: str | Path | None = None,
    allow_untrusted: bool = False,
    segments: list[PhonemeSegment] | None = None,
) -> GenerationResult:
    """Animate the face in `image_path` to say `audio_path`; write an MP4 to `out_path`.

    With `params.motion == "model"` the learned mouth model of `checkpoint` (default: the
    shipped, pinned bundle) is verified and used; an untrusted bundle needs `allow_untrusted`
    and leaves a warning. With `audit_log`, one JSONL record is appended whether the
    generation succeeds or fails. `segments`: exact phone timings of the audio when they are
    known (synthesized speech), so nothing is recognised or aligned.
    """
    started = time.perf_counter()
    try:
        # BLAS work here is small (mesh set-up); OpenBLAS's extra threads only spin against
        # the phoneme worker and the encoder on a 2-core machine (measured: set-up 0.15 s → 5 s).
        # OpenCV's thread pool likewise: its images here are too small to split (render CPU
        # 6.1 → 5.7 ms per frame at 512 with one thread).
        with threadpool_limits(limits=1, user_api="blas"), _single_threaded_opencv():
            model = _load_model(params, checkpoint, trust_dir, allow_untrusted)
            result = _generate(image_path, audio_path, out_path, params, motion_in=motion_in,
                               motion_out=motion_out, progress=progress, model=model,
                               segments=segments)
    except Exception as exc:
        if audit_log is not None:
            _audit(audit_log, user, image_path, audio_path, None, params.as_dict(), None,
                   time.perf_counter() - started, error=str(exc) or type(exc).__name__)
        raise
    if audit_log is not None:
        _audit(audit_log, user, image_path, audio_path, out_path, result.params, result,
               result.compute_s)
    return result


@contextlib.contextmanager
def _single_threaded_opencv():
    """OpenCV runs on the calling thread only, for the duration of the block."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _audit(path, user, image_path, audio_path, out_path, params, result, compute_s, error=None):
    """Append the audit record of one generation (CONTRACT.md fields)."""
    inputs = {name: Path(p) for name, p in (("image", image_path), ("audio", audio_path))
              if Path(p).is_file()}
    record = audit_record(
        checkpoint=result.checkpoint if result else rules_checkpoint(), inputs=inputs,
        audio_s=result.audio_s if result else None,
        duration_s=params.get("duration"), params=params,
        output=Path(out_path) if result else None, compute_s=round(compute_s, 3),
        outcome="succeeded" if result else "failed", error=error,
        warnings=result.warnings if result else (), user=user,
    )
    AuditLog(path).append(record)


def _load_model(params: GenerationParams, checkpoint, trust_dir, allow_untrusted):
    """The learned mouth model when asked for (imports torch: ~1.5 s), else None."""
    if params.motion != "model":
        if checkpoint is not None:
            raise InputError("--checkpoint needs --motion model (the rules use no checkpoint)")
        return None
    from mouthpiece.motion.learned import DEFAULT_BUNDLE, LearnedMotionModel

    return LearnedMotionModel.load(checkpoint or DEFAULT_BUNDLE, trust_dir, allow_untrusted)


def _generate(image_path, audio_path, out_path, params: GenerationParams, *, motion_in, motion_out,
              progress, model, segments) -> GenerationResult:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    report = progress or (lambda stage, fraction: None)

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = now - since
        return now

    # 1. validate inputs and parameters
    params, warnings = params.validated()
    if model is not None and not model.checkpoint["trusted"]:
        warnings.append(f"checkpoint {model.checkpoint['id']} {model.checkpoint['version']} is not "
                        "signed by a trusted key (loaded with --allow-untrusted)")
    audio = load_audio(audio_path)
    audio_s = audio.duration_s
    duration_s = params.resolve_duration(audio_s)
    n_frames = round(duration_s * params.fps)  # frames at fps
    if n_frames < 1:
        raise InputError(f"duration {duration_s:.3f} s gives no frame at {params.fps} fps")
    t = lap("load", started)

    # 2. speech: phonemes in a worker process (started first, so its decoders load while the
    #    features and the face are prepared; without a transcript it recognises chunk by
    #    chunk while the chunks before are rendered), or given (synthesis, --motion-in)
    report("speech", 0.0)
    analysis = _fit_audio(audio, round(duration_s * audio.sample_rate))
    phonemes = _phoneme_source(analysis, params, motion_in is not None, segments)
    with phonemes:  # stops the worker whatever happens below
        image = load_image(image_path)
        features = frame_features(analysis, params.fps, n_frames)
        phonemes.plan(features)
        # The worker has its own (forked) copy; from here on this process needs only the
        # per-frame features, so a long recording does not stay in memory twice.
        del audio, analysis

        # 3. face rig (landmarks, crop, working resolution)
        report("face", 0.0)
        rig = build_rig(image, face_index=params.face_index, expand_ratio=params.expand_ratio,
                        min_resolution=params.min_resolution)

        # 4. motion: head, expression and blinks for the whole clip; the mouth span by span
        builder = TrackBuilder(
            features, n_frames=n_frames, fps=params.fps, dynamic_scale=params.dynamic_scale,
            motion_scale=params.motion_scale, inference_steps=params.inference_steps,
            seed=params.seed, smoothing=params.smoothing,
            lip_sync_correction=params.lip_sync_correction,
        )
        track = (_check_track(motion_in, n_frames, params.fps) if motion_in
                 else MotionTrack.zeros(n_frames, params.fps))
        # the model helps where phones are guessed; known phones keep the rules' mouth (better)
        predicted = model.predict(features) if model and phonemes.name == "recognition" else None
        renderer = Renderer(rig, full_frame=params.full_frame)
        t = lap("prepare", t)

        # 5. render, streamed into 6. the encoder (the audio is fitted to the video:
        #    n_frames / fps differs from duration_s by less than half a frame)
        with VideoWriter(out_path, params.fps, renderer.output_size, audio_path,
                         n_frames / params.fps) as writer:
            for index, (f0, f1) in enumerate(phonemes.spans(n_frames)):
                if motion_in is None:
                    part = builder.span(phonemes.segments(index), f0, f1)
                    if predicted is not None:
                        part = blend_learned_mouth(
                            part, {c: v[f0:f1] for c, v in predicted.items()},
                            dynamic_scale=params.dynamic_scale)
                    track.values[f0:f1] = part.values
                for k in range(f0, f1):  # composited and converted on the encoder's thread
                    writer.write_deferred(renderer.render_crop(track.values[k]),
                                          renderer.finish_i420)
                    if k % 10 == 0:
                        report("render", k / n_frames)
    report("render", 1.0)
    lap("speech+render+encode", t)
    track.meta.update(av_offset_s=float(np.median(builder.offsets_s)) if builder.offsets_s else 0.0,
                      phonemes=phonemes.name, seed=params.seed)
    if motion_out is not None:
        track.save_json(motion_out)

    return GenerationResult(
        out=str(out_path), frames=n_frames, fps=params.fps, duration_s=n_frames / params.fps,
        audio_s=audio_s, compute_s=time.perf_counter() - started,
        resolution=tuple(renderer.output_size),
        checkpoint=model.checkpoint if model else rules_checkpoint(),
        params=params.as_dict(), warnings=warnings, timings_s=timings, phonemes=phonemes.name,
        av_offset_s=track.meta["av_offset_s"],
    )


class _KnownPhonemes:
    """Phonemes known before rendering (synthesis timings, or none for --motion-in)."""

    def __init__(self, name: str, segments: list[PhonemeSegment]) -> None:
        self.name, self._segments = name, segments

    def plan(self, features: AudioFeatures) -> None:
        pass

    def spans(self, n_frames: int) -> list[tuple[int, int]]:
        return [(0, n_frames)]

    def segments(self, index: int) -> list[PhonemeSegment]:
        return self._segments

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class _AlignedPhonemes(_KnownPhonemes):
    """The transcript force-aligned in a worker process, in one piece."""

    def __init__(self, audio: Audio, transcript: str) -> None:
        super().__init__("forced-alignment", [])
        self._worker = ChunkedRecognizer(
            audio, [(0.0, audio.duration_s)], task=partial(align_transcript, transcript=transcript),
            preload=(decoders.aligner,))

    def segments(self, index: int) -> list[PhonemeSegment]:
        return self._worker.segments(index)

    def __exit__(self, *exc) -> None:
        self._worker.close()


class _StreamedPhonemes(_KnownPhonemes):
    """Phonemes recognised chunk by chunk in worker processes (no transcript); the chunks
    are cut at pauses once the features are known."""

    def __init__(self, audio: Audio) -> None:
        super().__init__("recognition", [])
        self._spans: list[tuple[int, int]] = []
        self._worker = ChunkedRecognizer(audio, workers=RECOGNITION_WORKERS)

    def plan(self, features: AudioFeatures) -> None:
        self._spans = plan_chunks(features.series["speech"], features.fps)
        self._worker.plan([(f0 / features.fps, f1 / features.fps) for f0, f1 in self._spans])

    def spans(self, n_frames: int) -> list[tuple[int, int]]:
        return self._spans

    def segments(self, index: int) -> list[PhonemeSegment]:
        return self._worker.segments(index)

    def __exit__(self, *exc) -> None:
        self._worker.close()


def _phoneme_source(audio: Audio, params: GenerationParams, motion_given: bool,
                    segments: list[PhonemeSegment] | None) -> _KnownPhonemes:
    if motion_given:
        return _KnownPhonemes("motion-in", [])
    if segments is not None:
        return _KnownPhonemes("synthesis-timings", segments)
    if params.transcript:
        return _AlignedPhonemes(audio, params.transcript)
    return _StreamedPhonemes(audio)


def _check_track(track: MotionTrack, n_frames: int, fps: int) -> MotionTrack:
    """A user-supplied track must match the output's frame rate and length."""
    if abs(track.fps - fps) > 1e-6:
        raise InputError(f"motion track is at {track.fps:g} fps but the output is at {fps} fps: "
                         f"pass --fps {track.fps:g}")
    if track.n_frames != n_frames:
        raise InputError(f"motion track has {track.n_frames} frames, the output needs {n_frames}")
    full = MotionTrack.zeros(n_frames, fps)
    for name in track.channels:
        full[name] = track[name]
    return full.clipped()


def generate_from_text(
    image_path: str | Path,
    text: str,
    out_path: str | Path,
    params: GenerationParams,
    *,
    lang: str = "en",
    voice: str | Path | None = None,
    emotion_from: str | Path | None = None,
    g2p_dict: str | Path | None = None,
    **options,
) -> GenerationResult:
    """Speak `text` offline (in the voice of the `voice` reference clip, if given) and animate
    the face with the synthesizer's exact phone timings; `options` as for `generate`."""
    from mouthpiece.speech.tts import synthesize

    params, _ = params.validated()  # fixes the seed: speech and motion share it
    synthesis = synthesize(text, lang=lang, voice=voice, emotion_from=emotion_from,
                           g2p_dict=g2p_dict, seed=params.seed)
    with tempfile.TemporaryDirectory(prefix="mouthpiece-tts-") as tmp:
        speech = Path(tmp) / "speech.wav"
        synthesis.save_wav(speech)
        result = generate(image_path, speech, out_path, params, segments=synthesis.segments,
                          **options)
    result.speech = synthesis.report
    return result
