"""Shared fixtures: real portraits shipped by packages and real synthesized speech."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

SENTENCES = ("Bob bought my big puppy a map.", "We met at the pool by the mall.")
SENTENCE = " ".join(SENTENCES)
PAUSES_S = (0.4, 0.6, 0.5)  # silence before, between and after the two sentences


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    """Grace Hopper (matplotlib's sample data): one frontal face, closed mouth."""
    import matplotlib.cbook as cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def grace_photo(portrait_path) -> np.ndarray:
    """Grace Hopper as an array: one frontal face ~200 px wide, (600, 512, 3) uint8 RGB."""
    from PIL import Image

    return np.asarray(Image.open(portrait_path).convert("RGB"))


@pytest.fixture(scope="session")
def astronaut_photo() -> np.ndarray:
    """Eileen Collins as an array: one slightly turned face ~95 px wide, (512, 512, 3)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_path(tmp_path_factory) -> Path:
    """Eileen Collins (scikit-image's astronaut): one face, open smile."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def festival_speech(tmp_path_factory):
    """(wav path, text, exact phoneme timings): two festival sentences with real pauses."""
    from mouthpiece.speech.reference_tts import synthesize_passage

    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    segments = synthesize_passage(SENTENCES, path, PAUSES_S)
    return path, SENTENCE, segments


@pytest.fixture(scope="session")
def espeak_speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), "Hello there, how are you today?"],
                   check=True)
    return path


@pytest.fixture
def noise_image(tmp_path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    return path
