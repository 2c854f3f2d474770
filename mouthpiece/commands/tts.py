"""`mouthpiece tts`: text → speech WAV with phone timings (thin adapter over
`mouthpiece.speech.tts.synthesize`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mouthpiece.types import InputError

EXIT_OK = 0


def register(subparsers) -> None:
    """Add the `tts` sub-command."""
    p = subparsers.add_parser("tts", help="text → speech (offline TTS, voice cloning, G2P dictionary)")
    p.add_argument("--text", required=True, help="what to say (≤ 2000 characters)")
    p.add_argument("--out", required=True, help="output .wav path")
    p.add_argument("--lang", default="en", help="en, zh, or an espeak-ng language code (default: en)")
    p.add_argument("--voice", help="reference clip (3–10 s, one speaker) whose voice to imitate")
    p.add_argument("--emotion-from", help="clip whose pitch range, energy and rate to carry over "
                                          "(default: the --voice clip)")
    p.add_argument("--g2p-dict", help='pronunciation dictionary, JSONL lines {"grapheme", "phoneme"}')
    p.add_argument("--seed", type=int, default=0, help="seed of the neural engine's sampling (default 0)")
    p.add_argument("--engine", help="piper, festival, flite or espeak (default: best for the language)")
    p.add_argument("--engine-voice", help="engine voice (flite: slt/kal/awb/rms; espeak: e.g. en-us+f3)")
    p.add_argument("--sample-rate", type=int, default=24_000, help="output rate in Hz (default 24000)")
    p.add_argument("--phonemes-out", help="write the phones and their timings (.json, or text)")
    p.add_argument("--json", action="store_true", help="print one JSON result object on stdout")
    p.set_defaults(func=tts_command)


def _check_paths(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.suffix.lower() != ".wav":
        raise InputError(f"--out {args.out}: the output must be a .wav file")
    if not out.parent.is_dir():
        raise InputError(f"--out {args.out}: folder {out.parent} does not exist")
    for flag, value in (("--voice", args.voice), ("--emotion-from", args.emotion_from),
                        ("--g2p-dict", args.g2p_dict)):
        if value is not None and not Path(value).is_file():
            raise InputError(f"{flag} {value}: no such file")
    if args.phonemes_out and not Path(args.phonemes_out).parent.is_dir():
        raise InputError(f"--phonemes-out {args.phonemes_out}: folder does not exist")
    return out


def write_phonemes(path: str | Path, synthesis) -> None:
    """Phones with timings: JSON when the name ends in .json, else tab-separated lines."""
    path = Path(path)
    rows = [[s.phone, round(s.start_s, 4), round(s.end_s, 4)] for s in synthesis.segments]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps({"phonemes": synthesis.phonemes, "segments": rows},
                                   ensure_ascii=False, indent=1))
    else:
        lines = [f"# phonemes: {synthesis.phonemes}", "# start_s\tend_s\tphone"]
        lines += [f"{start:.4f}\t{end:.4f}\t{phone}" for phone, start, end in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tts_command(args: argparse.Namespace) -> int:
    from mouthpiece.speech.tts import synthesize

    out = _check_paths(args)
    synthesis = synthesize(
        args.text, lang=args.lang, voice=args.voice, emotion_from=args.emotion_from,
        g2p_dict=args.g2p_dict, seed=args.seed, engine=args.engine,
        sample_rate=args.sample_rate, engine_voice=args.engine_voice,
    )
    synthesis.save_wav(out)
    if args.phonemes_out:
        write_phonemes(args.phonemes_out, synthesis)
    report = synthesis.report
    if args.json:
        print(json.dumps({"out": str(out), "phonemes": synthesis.phonemes,
                          "segments": len(synthesis.segments), **report}, ensure_ascii=False))
    else:
        similarity = report["similarity"]
        extra = (f", speaker similarity {similarity['base']:.2f} → {similarity['adapted']:.2f}"
                 if similarity else "")
        print(f"wrote {out}: {report['duration_s']:.2f} s at {report['sample_rate']} Hz with "
              f"{report['engine']} (rtf {report['rtf']:.2f}{extra})")
        for warning in report["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK
