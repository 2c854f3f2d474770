"""Engine benchmark: speed, memory, lip sync and identity figures of the generation issue.

    .venv/bin/python bench/bench_engine.py [--quick] [--out bench/results/engine.json]

Every figure comes from one run on this machine; speed is reported as compute seconds per
second of video (RTF) and as a ratio to plain libx264 encoding of the same frames.
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


def run_measured(args: list[str]) -> tuple[dict, float]:
    """Run `mouthpiece generate --json` in a child; return (result, peak resident MB via wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(MOUTHPIECE + ["generate", *args, "--json", "--no-audit"], stdout=out,
                                stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"generate failed: {err.read().strip()}")
        return json.loads(out.read()), usage.ru_maxrss / 1024  # KB → MB


def x264_baseline(video: Path) -> float:
    """Seconds to encode the frames of `video` with the engine's encoder settings, nothing else."""
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


def identity(image: Path, video: Path, min_resolution: int) -> dict:
    """Median-frame SSIM outside the mouth/jaw region between the input photo and the output."""
    import cv2

    from mouthpiece.evaluation import masked_ssim
    from mouthpiece.face import build_rig
    from mouthpiece.media import load_image, read_video_frames
    from mouthpiece.topology import FACE_OVAL

    photo = load_image(image)
    frames = read_video_frames(video)
    first = next(frames)
    h, w = first.shape[:2]
    reference = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    rig = build_rig(photo, min_resolution=min_resolution)
    pts = rig.full_landmarks.xy * (w / photo.shape[1], h / photo.shape[0])
    # mouth/jaw region: the lower half of the face oval (below the nose), dilated a little
    oval = pts[list(FACE_OVAL)]
    nose_y = pts[1, 1]
    lower = np.vstack([oval[oval[:, 1] >= nose_y - 0.02 * h], pts[[98, 327, 2]]])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(lower.astype(np.int32)), 1)
    mask = cv2.dilate(mask, np.ones((15, 15), np.uint8))
    keep = mask == 0
    scores = [masked_ssim(reference, first, keep)]
    scores += [masked_ssim(reference, f, keep) for i, f in enumerate(frames) if i % 5 == 0]
    return {"ssim_median": round(float(np.median(scores)), 4), "ssim_min": round(float(np.min(scores)), 4),
            "frames_scored": len(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10-minute memory run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine.json"))
    args = parser.parse_args()

    from mouthpiece.speech.reference_tts import synthesize_passage

    results: dict = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = ROOT / "samples" / "portrait.jpg"
        speech = tmp / "speech.wav"
        segments = synthesize_passage(SENTENCES, speech, (0.3, 0.5, 0.6, 0.5, 0.4))
        results["speech_s"] = round(segments[-1].end_s, 2)

        for res in (512, 1024):
            video = tmp / f"out{res}.mp4"
            result, rss = run_measured(["--image", str(image), "--audio", str(speech), "--out",
                                        str(video), "--min-resolution", str(res), "--seed", "1"])
            encode_s = x264_baseline(video)
            results[f"speed_{res}"] = {
                "rtf": result["rtf"], "compute_s": result["compute_s"],
                "duration_s": result["duration_s"], "resolution": result["resolution"],
                "timings_s": result["timings_s"], "peak_rss_mb": round(rss),
                "x264_only_s": round(encode_s, 3),
                "ratio_to_x264": round(result["compute_s"] / encode_s, 2),
            }
            if res == 512:
                results["lipsync_recognition"] = lipsync(video, segments)
                results["identity"] = identity(image, video, res)

        video = tmp / "aligned.mp4"
        run_measured(["--image", str(image), "--audio", str(speech), "--out", str(video),
                      "--transcript", TEXT, "--seed", "1"])
        results["lipsync_transcript"] = lipsync(video, segments)

        still = tmp / "still.mp4"
        run_measured(["--image", str(image), "--audio", str(speech), "--out", str(still),
                      "--seed", "1", "--motion-scale", "0"])
        results["identity_still_head"] = identity(image, still, 512)

        if not args.quick:
            long_wav = tmp / "long.wav"
            repeats = int(np.ceil(600 / segments[-1].end_s))
            long_audio(speech, long_wav, repeats)
            result, rss = run_measured(["--image", str(image), "--audio", str(long_wav), "--out",
                                        str(tmp / "long.mp4"), "--seed", "1"])
            results["long_audio"] = {"duration_s": result["duration_s"], "rtf": result["rtf"],
                                     "peak_rss_mb": round(rss)}

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
