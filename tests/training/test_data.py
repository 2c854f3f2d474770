"""Synthetic training data: exact TTS timings, seeded determinism, sensible targets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mouthpiece.speech.g2p.phonesets import ipa_to_arpabet as ipa_phones
from mouthpiece.speech.tts.timeline import segments_from_ipa_spans
from mouthpiece.training import augment
from mouthpiece.training.data import DataRecipe, make_example
from mouthpiece.training.voices import Voice, synthesize
from mouthpiece.types import MOUTH_CHANNELS, PhonemeSegment

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
PRESS = MOUTH_CHANNELS.index("lip_press")
JAW = MOUTH_CHANNELS.index("jaw_open")


def test_ipa_of_several_languages_maps_to_arpabet():
    assert ipa_phones("aɪ") == ["AY"]
    assert ipa_phones("ˈɑː") == ["AA"]
    assert ipa_phones("tʃ") == ["CH"]
    assert ipa_phones("y") == ["UW"]  # French/German rounded front vowel → rounded lips
    assert ipa_phones("pf") == ["P", "F"]
    assert ipa_phones("") == []


def test_events_cover_the_timeline_and_split_multi_phone_tokens():
    # the engines' (token, start, end) sample spans, here at 1000 samples per second
    segs = segments_from_ipa_spans([("", 0, 100), ("b", 100, 200), ("ɛɹ", 200, 400), ("", 400, 600)], 1000, 600)
    assert [s.phone for s in segs] == ["SIL", "B", "EH", "R", "SIL"]
    assert segs[0].start_s == 0 and segs[-1].end_s == 0.6
    assert segs[2].end_s == pytest.approx(0.3)


@needs_espeak
@pytest.mark.parametrize("voice", [Voice("espeak", "en-us+f3"),
                                   Voice("espeak", "de+m3", "de", pitch=30, speed=140)])
def test_espeak_gives_exact_phone_timings(voice):
    text = "Bob met Pam by the map." if voice.language == "en" else "Peter backt Brot."
    utt = synthesize(text, voice)
    bilabials = [s for s in utt.segments if s.phone in ("P", "B", "M")]
    assert len(bilabials) >= 3
    assert utt.segments[-1].end_s == pytest.approx(len(utt.samples) / 16000, abs=0.02)
    # A stop's closure is quieter than the vowel after it: timings are where the audio is.
    b = bilabials[0]
    level = lambda s: np.sqrt(np.mean(utt.samples[int(s.start_s * 16000):int(s.end_s * 16000)] ** 2))  # noqa: E731
    following = utt.segments[utt.segments.index(b) + 1]
    assert level(b) < level(following)


@needs_espeak
def test_examples_are_deterministic_for_a_seed_and_differ_across_seeds():
    a = make_example(DataRecipe(seed=5), 3, "espeak")
    b = make_example(DataRecipe(seed=5), 3, "espeak")
    c = make_example(DataRecipe(seed=6), 3, "espeak")
    assert a.source == b.source and np.array_equal(a.inputs, b.inputs)
    assert np.array_equal(a.targets, b.targets)
    assert a.source != c.source
    assert a.inputs.shape[0] == a.targets.shape[0] and a.targets.shape[1] == 7
    assert np.all(np.isfinite(a.inputs))


@needs_espeak
def test_targets_close_the_lips_at_bilabials_and_rest_in_the_padding():
    ex = make_example(DataRecipe(seed=0, augment=False), 0, "espeak")
    assert ex.targets[:2, JAW].max() < 0.05 and ex.targets[-2:, JAW].max() < 0.05
    assert ex.targets[:, PRESS].max() > 0.9


def test_time_changing_augmentations_move_the_timings_with_the_audio():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal(16000).astype(np.float32) * 0.1
    segs = [PhonemeSegment("AA", 0.0, 0.5), PhonemeSegment("SIL", 0.5, 1.0)]
    fast, moved = augment.speed_perturb(samples, segs, 1.25)
    assert len(fast) == pytest.approx(16000 / 1.25, abs=2)
    assert moved[0].end_s == pytest.approx(0.4)
    loud = augment.set_level(samples, -20.0)
    assert 20 * np.log10(augment.speech_rms(loud)) == pytest.approx(-20.0, abs=0.1)
    wet = augment.reverberate(samples, rng, 0.4)
    assert wet.shape == samples.shape
    noisy = augment.add_noise(np.zeros(16000, np.float32) + samples, rng, 10.0)
    noise = noisy - samples
    snr = 20 * np.log10(augment.speech_rms(samples) / np.sqrt(np.mean(noise ** 2)))
    assert snr == pytest.approx(10.0, abs=1.0)
