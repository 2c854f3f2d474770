"""`mouthpiece batch TASKS.jsonl --out-dir DIR [--zip OUT.zip]`: many TTS and/or video jobs.

One JSON object a line. GLM-TTS field names are accepted: `uttid`/`output_name` (name),
`syn_text`/`input_text`/`text` (what to say), `prompt_speech`/`prompt_audio`/`voice`
(reference clip), `prompt_text` (recorded; the clip alone conditions the voice), plus
`lang`, `seed`, `engine`, `engine_voice`, `emotion_from`, `g2p_dict`, `sample_rate`.
A task with `image` also renders a video (from its `audio`, or from the synthesized speech)
with the generation parameters of `mouthpiece generate` as fields. A bad line fails only
its own task; `report.json` (also inside the ZIP) lists every task's outcome. Synthesized
speech is cached under DIR/.cache keyed by text, reference digests and parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import re
import sys
import time
import zipfile
from pathlib import Path

from mouthpiece.types import InputError, PhonemeSegment

log = logging.getLogger(__name__)

MAX_TASKS = 10_000
_TEXT_KEYS = ("syn_text", "input_text", "text")
_VOICE_KEYS = ("prompt_speech", "prompt_audio", "voice")
_NAME_KEYS = ("output_name", "uttid", "name")
_TTS_KEYS = {"lang", "seed", "engine", "engine_voice", "emotion_from", "g2p_dict", "sample_rate",
             "prompt_text", *_TEXT_KEYS, *_VOICE_KEYS, *_NAME_KEYS}
_VIDEO_KEYS = {"image", "audio", "duration", "pad", "trim", "min_resolution", "expand_ratio",
               "inference_steps", "dynamic_scale", "motion_scale", "fps", "smoothing",
               "lip_sync_correction", "face_index", "full_frame", "transcript"}
CACHE_VERSION = "tts-cache/1"


def register(subparsers) -> None:
    """Add the `batch` sub-command."""
    p = subparsers.add_parser("batch", help="run many tts/video tasks from a JSONL file")
    p.add_argument("tasks", help="JSONL file, one task per line")
    p.add_argument("--out-dir", required=True, help="folder for the outputs and report.json")
    p.add_argument("--zip", help="also pack outputs + report.json into this .zip")
    p.add_argument("--no-cache", action="store_true", help="re-synthesize even if cached")
    p.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    p.set_defaults(func=batch_command)


def _first(task: dict, keys: tuple[str, ...]):
    for key in keys:
        if task.get(key) not in (None, ""):
            return task[key]
    return None


def _path(value, base: Path, field: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(f"{field} must be a file path")
    path = Path(value)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise InputError(f"{field} {value}: no such file")
    return path


def _name(task: dict, number: int, used: set[str]) -> str:
    raw = str(_first(task, _NAME_KEYS) or f"task{number:04d}")
    name = re.sub(r"[^\w.-]+", "_", Path(raw).stem if raw.endswith((".wav", ".mp4")) else raw)
    name = name.strip("._") or f"task{number:04d}"
    if name in used:
        raise InputError(f"output name {name!r} is used by an earlier task")
    used.add(name)
    return name


def _digest_file(path: Path | None) -> str | None:
    if path is None:
        return None
    from mouthpiece.media import sha256_file

    return sha256_file(path)


def _tts(task: dict, base: Path, out_dir: Path, name: str, use_cache: bool) -> tuple[Path, dict]:
    """Synthesize (or fetch from the cache) the task's speech into out_dir/name.wav."""
    from mouthpiece.speech.tts import Synthesis, synthesize

    text = _first(task, _TEXT_KEYS)
    if not isinstance(text, str):
        raise InputError(f"task needs text to speak ({' / '.join(_TEXT_KEYS)}) or an audio file")
    voice = _path(_first(task, _VOICE_KEYS), base, "prompt_speech") \
        if _first(task, _VOICE_KEYS) else None
    emotion = _path(task["emotion_from"], base, "emotion_from") if task.get("emotion_from") else None
    g2p = _path(task["g2p_dict"], base, "g2p_dict") if task.get("g2p_dict") else None
    params = {"lang": task.get("lang", "en"), "seed": task.get("seed", 0),
              "engine": task.get("engine"), "engine_voice": task.get("engine_voice"),
              "sample_rate": task.get("sample_rate", 24_000)}
    key_data = {"v": CACHE_VERSION, "text": text, "voice": _digest_file(voice),
                "emotion": _digest_file(emotion), "g2p": _digest_file(g2p), **params}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
    cache_dir = out_dir / ".cache" / "tts"
    cached_wav, cached_meta = cache_dir / f"{key}.wav", cache_dir / f"{key}.json"
    wav = out_dir / f"{name}.wav"
    if use_cache and cached_wav.is_file() and cached_meta.is_file():
        meta = json.loads(cached_meta.read_text())
        wav.write_bytes(cached_wav.read_bytes())
        return wav, {**meta, "cached": True}
    synthesis: Synthesis = synthesize(text, voice=voice, emotion_from=emotion, g2p_dict=g2p,
                                      **params)
    synthesis.save_wav(wav)
    meta = {"report": synthesis.report, "phonemes": synthesis.phonemes,
            "segments": [[s.phone, s.start_s, s.end_s] for s in synthesis.segments]}
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached_wav.write_bytes(wav.read_bytes())
    cached_meta.write_text(json.dumps(meta, ensure_ascii=False))
    return wav, {**meta, "cached": False}


def _video(task: dict, base: Path, out_dir: Path, name: str, audio: Path,
           segments: list | None) -> dict:
    """Render the task's video; `segments`: the synthesizer's exact phone timings, if any."""
    from mouthpiece.engine import generate
    from mouthpiece.params import GenerationParams

    image = _path(task["image"], base, "image")
    fields = {f.name for f in dataclasses.fields(GenerationParams)}
    kwargs = {k: v for k, v in task.items() if k in fields}
    if "seed" in task:
        kwargs["seed"] = task["seed"]
    try:
        params = GenerationParams(**kwargs)
    except TypeError as exc:
        raise InputError(f"bad generation parameter: {exc}") from None
    if segments is not None and params.transcript:
        raise InputError("transcript goes with audio: the synthesized speech's timings are known")
    phones = None if segments is None else [PhonemeSegment(*s) for s in segments]
    result = generate(image, audio, out_dir / f"{name}.mp4", params, segments=phones)
    return result.to_json()


def run_task(task, number: int, base: Path, out_dir: Path, used: set[str], use_cache: bool) -> dict:
    """One task → its report entry (never raises for a bad task)."""
    entry: dict = {"line": number}
    started = time.perf_counter()
    try:
        if not isinstance(task, dict):
            raise InputError("a task must be a JSON object")
        unknown = sorted(set(task) - _TTS_KEYS - _VIDEO_KEYS)
        if unknown:
            raise InputError(f"unknown task fields: {', '.join(unknown)}")
        name = entry["name"] = _name(task, number, used)
        outputs, text, segments = [], _first(task, _TEXT_KEYS), None
        if task.get("audio"):
            if text is not None:
                raise InputError("give either audio or text to speak, not both")
            audio = _path(task["audio"], base, "audio")
        else:
            audio, meta = _tts(task, base, out_dir, name, use_cache)
            outputs.append(audio.name)
            entry["tts"] = {"cached": meta["cached"], "phonemes": meta["phonemes"],
                            **meta["report"]}
            segments = meta["segments"]  # [phone, start_s, end_s], exact
            if task.get("prompt_text"):
                entry.setdefault("warnings", []).append(
                    "prompt_text is recorded only: the voice is learned from prompt audio alone")
        if task.get("image"):
            entry["video"] = _video(task, base, out_dir, name, audio, segments)
            outputs.append(f"{name}.mp4")
        elif any(k in task for k in _VIDEO_KEYS - {"audio"}):
            raise InputError("video parameters given without an image")
        entry.update(status="succeeded", outputs=outputs)
    except InputError as exc:
        entry.update(status="failed", error=str(exc), error_kind="input")
    except Exception as exc:  # a task's internal failure must not stop the batch
        log.exception("task on line %d failed", number)
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}", error_kind="internal")
    entry["compute_s"] = round(time.perf_counter() - started, 3)
    return entry


def read_tasks(path: Path) -> list[tuple[int, object]]:
    """(line number, parsed object or the JSON error message) for each non-blank line."""
    if not path.is_file():
        raise InputError(f"tasks file {path}: no such file")
    tasks = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            tasks.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            tasks.append((number, InputError(f"line {number} is not JSON: {exc.msg}")))
    if not tasks:
        raise InputError(f"tasks file {path} has no tasks")
    if len(tasks) > MAX_TASKS:
        raise InputError(f"tasks file {path} has {len(tasks)} tasks; the limit is {MAX_TASKS}")
    return tasks


def run_batch(tasks_path: str | Path, out_dir: str | Path, zip_path: str | Path | None = None,
              use_cache: bool = True) -> dict:
    """Run every task; write out_dir/report.json (and the ZIP); return the report."""
    tasks_path, out_dir = Path(tasks_path), Path(out_dir)
    tasks = read_tasks(tasks_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    entries = []
    for number, task in tasks:
        if isinstance(task, InputError):
            entries.append({"line": number, "status": "failed", "error": str(task),
                            "error_kind": "input"})
            continue
        entries.append(run_task(task, number, tasks_path.parent, out_dir, used, use_cache))
        log.info("task line %d: %s", number, entries[-1]["status"])
    failed = sum(e["status"] != "succeeded" for e in entries)
    report = {"tasks": len(entries), "succeeded": len(entries) - failed, "failed": failed,
              "results": entries}
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    if zip_path is not None:
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(out_dir / "report.json", "report.json")
            for entry in entries:
                for output in entry.get("outputs", []):
                    archive.write(out_dir / output, output)
        report["zip"] = str(zip_path)
    return report


def batch_command(args: argparse.Namespace) -> int:
    if args.zip and not Path(args.zip).resolve().parent.is_dir():
        raise InputError(f"--zip {args.zip}: folder does not exist")
    report = run_batch(args.tasks, args.out_dir, args.zip, use_cache=not args.no_cache)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "results"}
                         | {"report": str(Path(args.out_dir) / "report.json")}))
    else:
        print(f"{report['succeeded']} of {report['tasks']} tasks succeeded; "
              f"report: {Path(args.out_dir) / 'report.json'}")
    if report["failed"]:
        kinds = {e.get("error_kind") for e in report["results"] if e["status"] != "succeeded"}
        sys.stderr.write(f"error: {report['failed']} of {report['tasks']} tasks failed "
                         "(see report.json)\n")
        return 1 if "internal" in kinds else 2
    return 0
