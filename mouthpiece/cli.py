"""`mouthpiece …` command line: parses, calls the library, reports (CONTRACT.md).

Exit codes: 0 success; 2 bad input (one `error: …` line on stderr); 1 internal failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as one `error:` line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_INPUT)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="portrait + speech → lip-synced talking-head MP4")
    p.add_argument("--image", required=True, help="portrait photo (PNG/JPEG/WEBP)")
    p.add_argument("--audio", required=True, help="speech recording (WAV/MP3/M4A/FLAC/OGG)")
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
    p.add_argument("--motion-out", help="write the motion track (JSON)")
    p.add_argument("--motion-in", help="render this motion track (JSON) instead of analysing the audio")
    p.add_argument("--json", action="store_true", help="print one JSON result object on stdout")


def _run_generate(args: argparse.Namespace) -> int:
    from mouthpiece.engine import generate
    from mouthpiece.params import GenerationParams
    from mouthpiece.types import InputError, MotionTrack

    for flag, path in (("--image", args.image), ("--audio", args.audio)):
        if not Path(path).is_file():
            raise InputError(f"{flag} {path}: no such file")
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
    )
    motion_in = MotionTrack.load_json(args.motion_in) if args.motion_in else None
    bar = None if args.json else _ProgressBar()
    result = generate(args.image, args.audio, out, params, motion_in=motion_in,
                      motion_out=args.motion_out, progress=bar)
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
    return EXIT_OK


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mouthpiece", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_generate(sub)
    return parser


COMMANDS = {"generate": _run_generate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from mouthpiece.types import InputError

    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return EXIT_INTERNAL
    except Exception as exc:  # the one place that turns unexpected failures into exit 1
        if os.environ.get("MOUTHPIECE_DEBUG"):
            raise
        sys.stderr.write(f"error: internal failure ({type(exc).__name__}: {exc}); "
                         "rerun with MOUTHPIECE_DEBUG=1 for a traceback\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
