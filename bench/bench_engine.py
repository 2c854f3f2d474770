"""Engine benchmark: speed, memory, lip sync and identity figures of the generation issue.

    nice -n -10 .venv/bin/python bench/bench_engine.py [--quick] [--repeat 3]
        [--out bench/results/engine.json]

Every figure comes from runs on this machine; speed is reported as compute seconds per
second of video (RTF) and as a ratio to plain libx264 encoding of the same frames, measured
right after each run (the ratio is what to compare when other work loads the CPU). Each
speed run is repeated `--repeat` times: min and median are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MOUTHPIECE = [sys.executable, "-m", "mouthpiece.cli"]
SENTENCES = (
    "Good morning, everybody.",
    "Today we will look at maps of the moon, and maybe a few pictures of big blue planets.",
    "Please open your books at page seven.",
    "Remember that the exam is on Friday.",
)
TEXT = " ".join(SENTENCES)


# Linux carries the pre-exec memory's high-water mark into a child's ru_maxrss, so a child
# forked from this (by then large) process would report at least this process's size. A tiny
# launcher process starts the measured command and reports its peak (the largest process of
# its tree: wait4 counts the waited-for workers too).
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(args: list[str]) -> tuple[dict, float]:
    """Run `mouthpiece generate --json` in a child; return (result, peak resident MB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "maxrss"
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(peak), *MOUTHPIECE, "generate",
                               *args, "--json", "--no-audit"], stdout=out, stderr=err, cwd=ROOT)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"generate failed: {err.read().strip()}")
        return json.loads(out.read()), int(peak.read_text()) / 1024  # KB → MB


def x264_baseline(video: Path) -> float:
    """Seconds to encode the frames of `video` with the engine's encoder settings, nothing
    else — in a child process, so that this one never holds the decoded frames."""
    proc = subprocess.run([sys.executable, __file__, "--x264-baseline", str(video)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return float(proc.stdout.strip())


def _x264_baseline_here(video: Path) -> float:
    from mouthpiece.media import VideoWriter, probe_video, read_video_frames

    info = probe_video(video)
    frames = list(read_video_frames(video))
    with tempfile.TemporaryDirectory() as tmp:
        silent = Path(tmp) / "silence.wav"
        _write_silence(silent, info["duration_s"])
        start = time.perf_counter()
        with VideoWriter(Path(tmp) / "x.mp4", round(info["fps"]), (info["width"], info["height"]),
                         silent, len(frames) / info["fps"]) as writer:
            for frame in frames:
                writer.write(frame)
        return time.perf_counter() - start


def _write_silence(path: Path, seconds: float) -> None:
    import wave

    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\0\0" * int(seconds * 16000))


def long_audio(source: Path, target: Path, repeats: int) -> None:
    """Concatenate a WAV file with itself (for the flat-memory check)."""
    import wave

    with wave.open(str(source)) as src:
        params, data = src.getparams(), src.readframes(src.getnframes())
    with wave.open(str(target), "wb") as dst:
        dst.setparams(params)
        for _ in range(repeats):
            dst.writeframes(data)


def lipsync(video: Path, segments) -> dict:
    from mouthpiece.evaluation import lipsync_report, mouth_openings

    openings = mouth_openings(video)
    return lipsync_report(openings, segments, fps=25).to_dict()


def identity(image: Path, video: Path, min_resolution: int, track: Path | None = None) -> dict:
    """Identity figures (`evaluation.identity_report`): raw SSIM outside the mouth/jaw, and
    face SSIM after pose compensation (registered, and against the same head pose)."""
    from mouthpiece.evaluation import identity_report
    from mouthpiece.face import build_rig
    from mouthpiece.media import load_image
    from mouthpiece.types import MotionTrack

    rig = build_rig(load_image(image), min_resolution=min_resolution)
    motion = MotionTrack.load_json(track) if track is not None else None
    return identity_report(rig, video, track=motion).to_dict()


def speed(image: Path, speech: Path, res: int, repeat: int, tmp: Path
          ) -> tuple[dict, Path, Path]:
    """`repeat` runs at `res`: RTF and ratio to plain x264 (min, median, each run); also the
    last run's video and motion track."""
    runs = []
    track = tmp / f"out{res}.json"
    for i in range(repeat):
        video = tmp / f"out{res}_{i}.mp4"
        result, rss = run_measured(["--image", str(image), "--audio", str(speech), "--out",
                                    str(video), "--min-resolution", str(res), "--seed", "1",
                                    "--motion-out", str(track)])
        encode_s = x264_baseline(video)
        runs.append({"rtf": result["rtf"], "compute_s": result["compute_s"],
                     "x264_only_s": round(encode_s, 3),
                     "ratio_to_x264": round(result["compute_s"] / encode_s, 2),
                     "timings_s": result["timings_s"], "peak_rss_mb": round(rss),
                     "load_avg": round(os.getloadavg()[0], 2)})
    rtfs = sorted(r["rtf"] for r in runs)
    ratios = sorted(r["ratio_to_x264"] for r in runs)
    summary = {"rtf_min": rtfs[0], "rtf_median": rtfs[len(rtfs) // 2],
               "ratio_to_x264_min": ratios[0], "ratio_to_x264_median": ratios[len(ratios) // 2],
               "duration_s": result["duration_s"], "resolution": result["resolution"],
               "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": runs}
    return summary, video, track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10-minute memory run")
    parser.add_argument("--repeat", type=int, default=3, help="speed runs per resolution")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine.json"))
    parser.add_argument("--x264-baseline", metavar="VIDEO", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.x264_baseline:  # the child of `x264_baseline`
        print(_x264_baseline_here(Path(args.x264_baseline)))
        return

    from mouthpiece.speech.reference_tts import synthesize_passage

    results: dict = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = ROOT / "samples" / "portrait.jpg"
        speech = tmp / "speech.wav"
        segments = synthesize_passage(SENTENCES, speech, (0.3, 0.5, 0.6, 0.5, 0.4))
        results["speech_s"] = round(segments[-1].end_s, 2)

        for res in (512, 1024):
            results[f"speed_{res}"], video, track = speed(image, speech, res, args.repeat, tmp)
            if res == 512:
                results["lipsync_recognition"] = lipsync(video, segments)
                results["identity"] = identity(image, video, res, track)

        video = tmp / "aligned.mp4"
        run_measured(["--image", str(image), "--audio", str(speech), "--out", str(video),
                      "--transcript", TEXT, "--seed", "1"])
        results["lipsync_transcript"] = lipsync(video, segments)

        still = tmp / "still.mp4"
        run_measured(["--image", str(image), "--audio", str(speech), "--out", str(still),
                      "--seed", "1", "--motion-scale", "0"])
        results["identity_still_head"] = identity(image, still, 512)

        short = results["speed_512"]["peak_rss_mb"]
        results["memory"] = {"peak_rss_mb_14s": short}
        if not args.quick:
            long_wav = tmp / "long.wav"
            repeats = int(np.ceil(600 / segments[-1].end_s))
            long_audio(speech, long_wav, repeats)
            result, rss = run_measured(["--image", str(image), "--audio", str(long_wav), "--out",
                                        str(tmp / "long.mp4"), "--seed", "1"])
            results["memory"].update(long_duration_s=result["duration_s"], long_rtf=result["rtf"],
                                     peak_rss_mb_long=round(rss),
                                     long_over_short=round(rss / short, 3))

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
