"""`mouthpiece tts` and `mouthpiece batch` adapters (parsed with their own register())."""

import argparse
import json
import zipfile

import pytest

from mouthpiece.commands import batch, tts
from mouthpiece.media import probe_audio
from mouthpiece.types import InputError


def _run(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    tts.register(sub)
    batch.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_tts_command_writes_wav_phonemes_and_json(tmp_path, capsys):
    out, phones = tmp_path / "hi.wav", tmp_path / "hi.json"
    g2p = tmp_path / "dict.jsonl"
    g2p.write_text('{"grapheme": "HTTP", "phoneme": "EY1 CH T IY1 T IY1 P IY1"}\n')
    code = _run(["tts", "--text", "HTTP is fine.", "--out", str(out), "--g2p-dict", str(g2p),
                 "--engine", "espeak", "--phonemes-out", str(phones), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and result["engine"] == "espeak"
    assert probe_audio(out)["sample_rate"] == 24_000
    saved = json.loads(phones.read_text())
    assert saved["phonemes"].startswith("EY CH T IY T IY P IY")
    assert saved["segments"][-1][2] == pytest.approx(result["duration_s"], abs=1e-3)


@pytest.mark.parametrize("extra, message", [
    (["--out", "x.mp3"], "must be a .wav"),
    (["--out", "{tmp}/nofolder/x.wav"], "does not exist"),
    (["--out", "{tmp}/x.wav", "--voice", "{tmp}/missing.wav"], "no such file"),
])
def test_tts_command_refuses_bad_paths(tmp_path, extra, message):
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    with pytest.raises(InputError, match=message):
        _run(["tts", "--text", "hello", *extra])


def test_batch_one_bad_line_fails_only_its_task_and_reruns_from_cache(tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join([
        json.dumps({"uttid": "first", "syn_text": "Hello there.", "engine": "espeak"}),
        "{not json",
        json.dumps({"output_name": "second.wav", "input_text": "Good bye.", "engine": "espeak",
                    "prompt_text": "unused"}),
        json.dumps({"uttid": "third", "syn_text": "   ", "engine": "espeak"}),
        json.dumps({"uttid": "fourth", "syn_text": "Hi.", "prompt_audio": "missing.wav"}),
    ]) + "\n")
    out_dir, archive = tmp_path / "out", tmp_path / "out.zip"
    code = _run(["batch", str(tasks), "--out-dir", str(out_dir), "--zip", str(archive)])
    assert code == 2  # some tasks had bad input; the others ran
    report = json.loads((out_dir / "report.json").read_text())
    status = {r["line"]: r["status"] for r in report["results"]}
    assert status == {1: "succeeded", 2: "failed", 3: "succeeded", 4: "failed", 5: "failed"}
    errors = {r["line"]: r.get("error", "") for r in report["results"]}
    assert "not JSON" in errors[2] and "empty" in errors[4] and "no such file" in errors[5]
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["first.wav", "report.json", "second.wav"]
    assert report["results"][0]["tts"]["cached"] is False

    _run(["batch", str(tasks), "--out-dir", str(out_dir)])
    again = json.loads((out_dir / "report.json").read_text())
    assert again["results"][0]["tts"]["cached"] is True
    assert (out_dir / "first.wav").read_bytes() == (out_dir / ".cache" / "tts").joinpath(
        next(p.name for p in (out_dir / ".cache" / "tts").glob("*.wav")
             if p.read_bytes() == (out_dir / "first.wav").read_bytes())).read_bytes()


@pytest.mark.slow
def test_batch_video_task_from_text(tmp_path, portrait_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"uttid": "talk", "input_text": "Bob bought a map.",
                                 "image": str(portrait_path), "min_resolution": 256,
                                 "seed": 1}) + "\n")
    code = _run(["batch", str(tasks), "--out-dir", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert code == 0, report
    assert report["results"][0]["outputs"] == ["talk.wav", "talk.mp4"]
    assert report["results"][0]["video"]["phoneme_source"] == "synthesis-timings"
