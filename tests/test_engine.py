"""End-to-end generation on real faces with real synthesized speech."""

from __future__ import annotations

import av
import numpy as np
import pytest

from mouthpiece.engine import generate
from mouthpiece.media import probe_video, read_video_frames
from mouthpiece.params import GenerationParams
from mouthpiece.types import MotionTrack


@pytest.mark.parametrize("image_fixture", ["portrait_path", "astronaut_path"])
def test_generate_probes_as_contract(request, tmp_path, image_fixture, festival_speech):
    image = request.getfixturevalue(image_fixture)
    wav, _, _ = festival_speech
    out = tmp_path / "talk.mp4"
    result = generate(image, wav, out, GenerationParams(min_resolution=256, seed=1))
    info = probe_video(out)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["audio_codec"] == "aac"
    assert info["frames"] == result.frames == round(result.audio_s * 25)
    assert abs(info["fps"] - 25) < 1e-6
    assert abs(info["duration_s"] - result.audio_s) < 0.05
    assert abs(info["audio_duration_s"] - result.audio_s) < 0.05
    assert (info["width"], info["height"]) == tuple(result.resolution)
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0


def test_crop_mode_short_side_is_min_resolution(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    result = generate(portrait_path, wav, tmp_path / "c.mp4",
                      GenerationParams(min_resolution=256, seed=1, full_frame=False))
    assert min(result.resolution) == 256


@pytest.mark.parametrize("fps", [5, 30, 60])
def test_frame_count_at_any_fps(tmp_path, portrait_path, festival_speech, fps):
    wav, _, _ = festival_speech
    out = tmp_path / f"f{fps}.mp4"
    result = generate(portrait_path, wav, out, GenerationParams(min_resolution=128, seed=1, fps=fps))
    info = probe_video(out)
    assert info["frames"] == round(result.audio_s * fps)
    assert abs(info["audio_duration_s"] - info["duration_s"]) < 0.05


def test_pad_and_trim(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    padded = generate(portrait_path, wav, tmp_path / "p.mp4",
                      GenerationParams(min_resolution=128, seed=1, duration=6.0, pad=True))
    assert probe_video(tmp_path / "p.mp4")["frames"] == 150 == padded.frames
    trimmed = generate(portrait_path, wav, tmp_path / "t.mp4",
                       GenerationParams(min_resolution=128, seed=1, duration=2.0, trim=True))
    assert probe_video(tmp_path / "t.mp4")["frames"] == 50 == trimmed.frames


def _video_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(video=0) if packet.size]


def test_same_seed_same_frames_and_seed_zero(tmp_path, portrait_path, festival_speech):
    """Same inputs + seed → the same H.264 stream, packet for packet (so the same frames:
    decoding is exact). Compared as packets, not as RGB through swscale, whose conversion is
    not ours to test."""
    wav, _, _ = festival_speech
    streams = []
    for name, seed in (("a", 0), ("b", 0), ("c", 7)):
        out = tmp_path / f"{name}.mp4"
        generate(portrait_path, wav, out, GenerationParams(min_resolution=128, seed=seed),
                 motion_out=tmp_path / f"{name}.json")
        streams.append(_video_packets(out))
    a, b, c = streams
    differing = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    assert len(a) == len(b) and not differing, f"packets {differing[:10]} differ"
    assert a != c
    ta, tb, tc = (MotionTrack.load_json(tmp_path / f"{n}.json") for n in "abc")
    assert np.array_equal(ta.values, tb.values)
    assert not np.allclose(ta["head_yaw"], tc["head_yaw"])


def test_motion_track_round_trip_rerenders(tmp_path, portrait_path, festival_speech):
    wav, _, _ = festival_speech
    track_path = tmp_path / "t.json"
    generate(portrait_path, wav, tmp_path / "a.mp4", GenerationParams(min_resolution=128, seed=2),
             motion_out=track_path)
    track = MotionTrack.load_json(track_path)
    generate(portrait_path, wav, tmp_path / "b.mp4", GenerationParams(min_resolution=128, seed=2),
             motion_in=track)
    a = np.stack(list(read_video_frames(tmp_path / "a.mp4"))).astype(np.int16)
    b = np.stack(list(read_video_frames(tmp_path / "b.mp4"))).astype(np.int16)
    assert np.abs(a - b).mean() < 1.0  # JSON rounds values to 1e-5
