"""The CLI contract: exit codes, one `error:` line, --json result, no traceback, no partial file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mouthpiece.media import sha256_file

CLI = [sys.executable, "-m", "mouthpiece.cli"]


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """The CLI writes its audit log under ./data: keep that out of the repository."""
    monkeypatch.chdir(tmp_path)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def assert_input_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_generate_json_result(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    out = tmp_path / "talk.mp4"
    proc = run("generate", "--image", str(portrait_path), "--audio", str(wav), "--out", str(out),
               "--min-resolution", "256", "--seed", "3", "--json", "--motion-out", str(tmp_path / "t.json"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in ("out", "frames", "fps", "duration_s", "audio_s", "compute_s", "rtf", "resolution",
                "checkpoint", "params", "warnings"):
        assert key in result
    assert set(result["checkpoint"]) >= {"id", "version", "sha256"}
    assert result["params"]["seed"] == 3 and result["params"]["min_resolution"] == 256
    assert any("min_resolution" in w for w in result["warnings"])  # 256 < recommended 512
    assert out.is_file() and (tmp_path / "t.json").is_file()
    assert result["frames"] == round(result["audio_s"] * 25)

    # one audit line per generation (CONTRACT.md), checked field by field
    audit = [json.loads(line) for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 1
    record = audit[0]
    assert record["outcome"] == "succeeded" and record["error"] is None
    assert record["checkpoint"] == result["checkpoint"]
    assert record["inputs"]["image"] == sha256_file(portrait_path)
    assert record["inputs"]["audio"] == sha256_file(wav)
    assert record["output"] == sha256_file(out)
    assert record["params"] == result["params"]
    assert record["audio_s"] == pytest.approx(result["audio_s"], abs=1e-3)
    assert record["duration_s"] is None  # not requested: the audio's length
    assert record["compute_s"] > 0 and record["time"].endswith(("Z", "+00:00"))


def test_failed_generation_is_audited(tmp_path, noise_image, festival_speech):
    wav, _, _ = festival_speech
    proc = run("generate", "--image", str(noise_image), "--audio", str(wav), "--out", str(tmp_path / "o.mp4"))
    assert proc.returncode == 2
    record = json.loads((tmp_path / "data" / "audit.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "failed" and "no face" in record["error"]
    assert record["output"] is None


def test_missing_files(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    assert_input_error(run("generate", "--image", str(tmp_path / "nope.jpg"), "--audio", str(wav),
                           "--out", str(tmp_path / "o.mp4")), "no such file")
    assert_input_error(run("generate", "--image", str(portrait_path), "--audio", str(tmp_path / "x.wav"),
                           "--out", str(tmp_path / "o.mp4")), "no such file")


def test_usage_error_is_one_line(tmp_path):
    proc = run("generate", "--image", "x.jpg")
    assert_input_error(proc, "required")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag,value,name", [("--fps", "100", "fps"), ("--min-resolution", "500", "min_resolution"),
                                             ("--dynamic-scale", "3", "dynamic_scale"),
                                             ("--expand-ratio", "-0.1", "expand_ratio"),
                                             ("--inference-steps", "0", "inference_steps")])
def test_parameter_bounds(tmp_path, portrait_path, festival_speech, flag, value, name):
    wav, _, _ = festival_speech
    out = tmp_path / "o.mp4"
    proc = run("generate", "--image", str(portrait_path), "--audio", str(wav), "--out", str(out), flag, value)
    assert_input_error(proc, name)
    assert not out.exists()


def test_bad_inputs_leave_no_output(tmp_path, portrait_path, festival_speech, noise_image):
    wav, _, _ = festival_speech
    out = tmp_path / "o.mp4"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(256)) * 40)
    text_as_image = tmp_path / "face.jpg"
    text_as_image.write_text("not an image")
    cases = [
        (portrait_path, empty, "empty"),
        (portrait_path, corrupt, None),
        (portrait_path, portrait_path, None),  # an image given as audio
        (text_as_image, wav, None),
        (noise_image, wav, "no face"),
    ]
    for image, audio, needle in cases:
        proc = run("generate", "--image", str(image), "--audio", str(audio), "--out", str(out))
        assert_input_error(proc, *([needle] if needle else []))
        assert list(tmp_path.glob("o*.mp4*")) == []


def test_duration_mismatch_needs_pad(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    out = tmp_path / "o.mp4"
    assert_input_error(run("generate", "--image", str(portrait_path), "--audio", str(wav), "--out", str(out),
                           "--duration", "30"), "--pad")
    assert not out.exists()


def test_face_index_out_of_range(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    assert_input_error(run("generate", "--image", str(portrait_path), "--audio", str(wav),
                           "--out", str(tmp_path / "o.mp4"), "--face-index", "3"), "face")


def test_output_must_be_mp4(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    assert_input_error(run("generate", "--image", str(portrait_path), "--audio", str(wav),
                           "--out", str(tmp_path / "o.avi")), ".mp4")


def test_generate_from_text_uses_synthesis_timings(tmp_path, portrait_path):
    out = tmp_path / "t.mp4"
    proc = run("generate", "--image", str(portrait_path), "--text", "Bob made a map.",
               "--out", str(out), "--min-resolution", "128", "--seed", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["phoneme_source"] == "synthesis-timings"
    assert result["speech"]["engine"] and result["audio_s"] > 0.5
    assert out.is_file()


def test_text_only_options_need_text(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    assert_input_error(run("generate", "--image", str(portrait_path), "--audio", str(wav),
                           "--voice", str(wav), "--out", str(tmp_path / "o.mp4")), "--text")
    assert_input_error(run("generate", "--image", str(portrait_path), "--out", str(tmp_path / "o.mp4")),
                       "--audio", "--text")
