"""The simulated population: speaking styles, faces, the recipe digest, and a real (tiny) build."""

from __future__ import annotations

import numpy as np
import pytest

from mouthpiece.federated import population as pop
from mouthpiece.types import MOUTH_CHANNELS, InputError, MotionTrack


def _talking_track(n: int = 60, fps: float = 25.0) -> MotionTrack:
    """Syllables every 0.24 s with rest (all mouth channels 0) at both ends."""
    track = MotionTrack.zeros(n, fps)
    t = np.arange(n) / fps
    talking = (t > 0.4) & (t < 2.0)
    track["jaw_open"] = np.where(talking, 0.3 + 0.3 * np.sin(2 * np.pi * t / 0.24) ** 2, 0)
    track["lip_round"] = np.where(talking, 0.3 * (np.sin(2 * np.pi * t / 0.7) > 0), 0)
    track["lip_wide"] = np.where(talking, 0.3 * (np.sin(2 * np.pi * t / 0.7) <= 0), 0)
    track["head_yaw"] = 3 * np.sin(t)
    return track


def _mouth(track: MotionTrack) -> np.ndarray:
    return np.stack([track[c] for c in MOUTH_CHANNELS], axis=1)


def test_articulation_styles_change_the_mouth_and_keep_the_rest_face():
    track = _talking_track()
    neutral = pop.articulate(track, "neutral")
    assert np.array_equal(neutral.values, track.values)
    for style in pop.ARTICULATIONS:
        styled = pop.articulate(track, style)
        assert np.array_equal(styled["head_yaw"], track["head_yaw"])  # only the mouth changes
        rest = (np.arange(track.n_frames) < 5) | (np.arange(track.n_frames) > 55)
        assert np.abs(_mouth(styled)[rest]).max() < 0.02, style  # silence still rests
        assert _mouth(styled).min() >= 0 and _mouth(styled).max() <= 1
    rounded, spread = pop.articulate(track, "rounded"), pop.articulate(track, "spread")
    assert rounded["lip_round"].mean() > 1.3 * track["lip_round"].mean()
    assert spread["smile"].mean() > track["smile"].mean() + 0.1
    mumbled, crisp = pop.articulate(track, "mumbled"), pop.articulate(track, "crisp")
    speed = lambda t: np.abs(np.diff(t["jaw_open"])).mean()  # noqa: E731
    assert speed(mumbled) < 0.6 * speed(track) < 0.6 * speed(crisp)
    early = pop.articulate(track, "anticipatory")
    assert np.allclose(early["jaw_open"][:-2], track["jaw_open"][2:])  # 80 ms ahead
    with pytest.raises(InputError, match="articulation"):
        pop.articulate(track, "shouty")


def test_faces_are_edits_of_the_two_sample_portraits():
    grace = pop.face_image("grace")
    assert grace.shape == (600, 512, 3) and grace.dtype == np.uint8
    assert np.array_equal(pop.face_image("grace-flip"), grace[:, ::-1])
    astronaut, crop = pop.face_image("astronaut"), pop.face_image("astronaut-crop")
    assert crop.shape[2] == 3 and 0.75 * 512 < crop.shape[0] == crop.shape[1] < 0.85 * 512
    assert np.array_equal(crop[100:110, 100:110], astronaut[151:161, 151:161])
    gray = pop.face_image("grace-gray")
    assert np.array_equal(gray[..., 0], gray[..., 2])
    with pytest.raises(InputError, match="unknown face"):
        pop.face_image("mona-lisa")


def test_recipe_styles_differ_and_the_digest_follows_the_recipe():
    recipe = pop.PopulationRecipe()
    styles = recipe.styles()
    assert len(styles) == 10
    # no two people share voice, face and style
    assert len({(s.voice.label, s.face, s.dynamic_scale, s.articulation) for s in styles}) == 10
    assert len({s.face for s in styles}) == 10
    assert {s.voice.engine for s in styles} == {"espeak", "festival", "piper"}
    assert set(pop.ARTICULATIONS) - {s.articulation for s in styles} == set()
    assert recipe.digest == pop.PopulationRecipe().digest
    assert recipe.digest != pop.PopulationRecipe(clips_per_client=3).digest
    assert recipe.digest != pop.PopulationRecipe(seed=1).digest
    with pytest.raises(InputError):
        pop.PopulationRecipe(n_clients=11)


@pytest.mark.slow
def test_build_renders_fits_and_caches_a_population(tmp_path):
    """Two people × one short clip, rendered by mouthpiece and fitted back from the video;
    a second build reads the cache and renders nothing."""
    recipe = pop.PopulationRecipe(n_clients=2, clips_per_client=1, min_words=4, max_words=5,
                                  min_resolution=192)
    messages: list[str] = []
    built = pop.build_population(recipe, tmp_path, progress=messages.append)
    assert len(messages) == 2 and len(built.clients) == 2
    for client in built.clients:
        [example] = client.examples
        assert example.inputs.shape == (len(example.targets), 87)
        assert example.targets.shape[1] == 7 and 1.0 < len(example.targets) / 25 < 6.0
        assert client.videos[0].is_file()
        assert pop.fit_correlation(client)["jaw_open"] > 0.6  # the fit follows the render
    # the two people move their mouths differently (different voices, faces and styles)
    a, b = (c.examples[0].targets for c in built.clients)
    assert abs(a[:, 0].mean() - b[:, 0].mean()) + abs(a[:, 6].mean() - b[:, 6].mean()) > 0.05
    stamp = built.clients[0].videos[0].stat().st_mtime_ns
    again = pop.build_population(recipe, tmp_path, progress=messages.append)
    assert len(messages) == 2  # nothing rebuilt
    assert again.clients[0].videos[0].stat().st_mtime_ns == stamp
    assert np.array_equal(again.clients[1].examples[0].targets, b)
    assert again.summary()["clients"] == 2
