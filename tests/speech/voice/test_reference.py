"""Reference-clip validation: length, silence, one speaker, not audio; and the profile."""

import numpy as np
import pytest
from scipy.signal import resample_poly

from mouthpiece.speech.voice import analyze_reference
from mouthpiece.types import InputError

from .conftest import flite, read, write


def test_profile_of_a_clean_clip(refs):
    profile = analyze_reference(refs["slt"])
    assert profile.embedding.shape == (256,)
    assert profile.halves_cosine > 0.8
    assert 120 < 2 ** profile.prosody.logf0_mean < 260  # a female voice
    assert 2 < profile.prosody.syllables_per_s < 7
    male = analyze_reference(refs["kal"])
    assert 2 ** male.prosody.logf0_mean < 2 ** profile.prosody.logf0_mean - 40


def test_too_short_clip(refs):
    path = flite(refs["folder"] / "short.wav", "slt", "Hello there.")
    with pytest.raises(InputError, match=r"give a clip of 3–10 s"):
        analyze_reference(path)


def test_silent_clip(refs):
    path = write(refs["folder"] / "silent.wav", np.random.default_rng(0).normal(0, 1e-4, 16_000 * 4))
    with pytest.raises(InputError, match="silent"):
        analyze_reference(path)


def test_not_audio(refs):
    path = refs["folder"] / "notes.wav"
    path.write_text("this is not audio at all, just text\n" * 50)
    with pytest.raises(InputError, match="not a supported audio format"):
        analyze_reference(path)


def test_two_speakers(refs):
    slt, rate = read(refs["slt"])
    kal, kal_rate = read(refs["kal"])
    kal = resample_poly(kal, rate, kal_rate)
    path = write(refs["folder"] / "two.wav", np.concatenate([slt[: 5 * rate], kal[: 5 * rate]]), rate)
    with pytest.raises(InputError, match="more than one voice"):
        analyze_reference(path)
