"""`mouthpiece generate`: portrait + speech → lip-synced talking-head MP4 (thin adapter)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DATA_DIR = Path("data")


def register(sub) -> None:
    """Add `generate` to the top-level sub-parsers."""
    p = sub.add_parser("generate", help="portrait + speech → lip-synced talking-head MP4")
    p.add_argument("--image", required=True, help="portrait photo (PNG/JPEG/WEBP)")
    speech = p.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", help="speech recording (WAV/MP3/M4A/FLAC/OGG)")
    speech.add_argument("--text", help="words to speak (offline text-to-speech)")
    p.add_argument("--voice", help="with --text: a 3–10 s clip of the voice to speak in")
    p.add_argument("--lang", default="en", help="with --text: language (en, zh, or an espeak-ng code)")
    p.add_argument("--g2p-dict", help="with --text: pronunciation replacements (JSONL)")
    p.add_argument("--emotion-from", help="with --text: clip whose prosody to carry over (default: --voice)")
    p.add_argument("--out", required=True, help="output .mp4 path")
    p.add_argument("--transcript", help="the spoken words (enables exact forced alignment)")
    p.add_argument("--duration", type=float, help="output seconds (default: the audio's length)")
    fit = p.add_mutually_exclusive_group()
    fit.add_argument("--pad", action="store_true", help="pad with silence up to --duration")
    fit.add_argument("--trim", action="store_true", help="cut the audio down to --duration")
    p.add_argument("--min-resolution", type=int, default=512, help="short side of the animated crop (128–2048, ×64)")
    p.add_argument("--expand-ratio", type=float, default=0.5, help="margin around the face (0–1)")
    p.add_argument("--inference-steps", type=int, default=25, help="head/expression sampler steps (1–100)")
    p.add_argument("--dynamic-scale", type=float, default=1.0, help="mouth/jaw amplitude (0.5–2)")
    p.add_argument("--motion-scale", type=float, default=1.0, help="head/expression amplitude (0–2)")
    p.add_argument("--fps", type=int, default=25, help="frame rate (5–60)")
    p.add_argument("--seed", type=int, help="random seed (default: random, reported)")
    p.add_argument("--no-smoothing", action="store_true", help="disable temporal smoothing")
    p.add_argument("--no-lip-sync-correction", action="store_true", help="keep the raw A/V alignment")
    p.add_argument("--face-index", type=int, default=0, help="which face (0 = largest)")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--full-frame", action="store_true", help="whole photo, animated face pasted back (default)")
    view.add_argument("--crop", action="store_true", help="output only the animated face crop")
    p.add_argument("--motion", choices=("rules", "model"), default="rules",
                   help="mouth motion: viseme rules (default) or rules + the learned model")
    p.add_argument("--checkpoint", help="model bundle for --motion model (default: the shipped one)")
    p.add_argument("--allow-untrusted", action="store_true",
                   help="load a checkpoint not signed by a trusted key (results carry a warning)")
    p.add_argument("--motion-out", help="write the motion track (JSON)")
    p.add_argument("--motion-in", help="render this motion track (JSON) instead of analysing the audio")
    p.add_argument("--audit-log", help="append one JSON line per generation here (default: DATA_DIR/audit.jsonl)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="data folder (audit log, trust store)")
    p.add_argument("--no-audit", action="store_true", help="do not write an audit record")
    p.add_argument("--json", action="store_true", help="print one JSON result object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the command line, generate, report."""
    from mouthpiece.engine import generate, generate_from_text
    from mouthpiece.params import GenerationParams
    from mouthpiece.types import InputError, MotionTrack

    files = (("--image", args.image), ("--audio", args.audio), ("--voice", args.voice),
             ("--g2p-dict", args.g2p_dict), ("--emotion-from", args.emotion_from))
    for flag, path in files:
        if path is not None and not Path(path).is_file():
            raise InputError(f"{flag} {path}: no such file")
    text_only = {"--voice": args.voice, "--g2p-dict": args.g2p_dict,
                 "--emotion-from": args.emotion_from}
    if args.audio and any(text_only.values()):
        used = ", ".join(flag for flag, value in text_only.items() if value)
        raise InputError(f"{used} only go with --text (the speech is given by --audio)")
    if args.text and args.transcript:
        raise InputError("--transcript goes with --audio: with --text the words are known")
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out {args.out}: the output must be an .mp4 file")
    if not out.parent.is_dir():
        raise InputError(f"--out {args.out}: folder {out.parent} does not exist")
    params = GenerationParams(
        duration=args.duration, pad=args.pad, trim=args.trim,
        min_resolution=args.min_resolution, expand_ratio=args.expand_ratio,
        inference_steps=args.inference_steps, dynamic_scale=args.dynamic_scale,
        motion_scale=args.motion_scale, fps=args.fps, seed=args.seed,
        smoothing=not args.no_smoothing, lip_sync_correction=not args.no_lip_sync_correction,
        face_index=args.face_index, full_frame=not args.crop, transcript=args.transcript,
        motion=args.motion,
    )
    motion_in = MotionTrack.load_json(args.motion_in) if args.motion_in else None
    bar = None if args.json else _ProgressBar()
    audit = None if args.no_audit else Path(args.audit_log or Path(args.data_dir) / "audit.jsonl")
    options = dict(motion_in=motion_in, motion_out=args.motion_out, progress=bar,
                   audit_log=audit, checkpoint=args.checkpoint,
                   trust_dir=Path(args.data_dir) / "trust", allow_untrusted=args.allow_untrusted)
    if args.text is not None:
        result = generate_from_text(args.image, args.text, out, params, lang=args.lang,
                                    voice=args.voice, emotion_from=args.emotion_from,
                                    g2p_dict=args.g2p_dict, **options)
    else:
        result = generate(args.image, args.audio, out, params, **options)
    if bar:
        bar.done()
    payload = result.to_json()
    if args.json:
        print(json.dumps(payload))
    else:
        print(f"wrote {payload['out']}: {payload['frames']} frames at {payload['fps']} fps, "
              f"{payload['resolution'][0]}x{payload['resolution'][1]}, "
              f"{payload['compute_s']:.1f} s compute (rtf {payload['rtf']:.2f}), seed {payload['params']['seed']}")
        for warning in payload["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


class _ProgressBar:
    """A one-line progress display on stderr."""

    def __init__(self) -> None:
        self._last = ""
        self._tty = sys.stderr.isatty()

    def __call__(self, stage: str, fraction: float) -> None:
        filled = int(fraction * 30)
        line = f"{stage:<8} [{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}%"
        if line == self._last:
            return
        self._last = line
        if self._tty:
            sys.stderr.write("\r" + line)
        elif fraction in (0.0, 1.0):
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self._tty:
            sys.stderr.write("\n")
