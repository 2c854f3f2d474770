"""Real synthesis (piper, espeak-ng, flite) of short sentences: timings, dictionary, seeds."""

import numpy as np
import pytest

from mouthpiece.speech.tts import synthesize
from mouthpiece.types import InputError

DICTIONARY = {"重庆": "chong2 qing4", "HTTP": "EY1 CH T IY1 T IY1 P IY1", "AI": "ei4 ai4"}


def _tiles(synthesis):
    segs = synthesis.segments
    assert segs[0].start_s == 0.0
    assert segs[-1].end_s == pytest.approx(synthesis.duration_s)
    assert all(a.end_s == b.start_s for a, b in zip(segs, segs[1:]))
    assert all(s.phone != "SIL" or True for s in segs)


@pytest.fixture(scope="module")
def piper_http():
    return synthesize("We use HTTP daily.", g2p_dict={"HTTP": DICTIONARY["HTTP"]}, seed=3)


def test_piper_speaks_dictionary_pronunciation_with_exact_timings(piper_http):
    s = piper_http
    assert s.report["engine"] == "piper" and s.sample_rate == 24_000
    assert s.samples.dtype == np.float32 and np.abs(s.samples).max() > 0.1
    _tiles(s)
    assert "EY CH T IY T IY P IY" in s.phonemes
    spoken = [seg.phone for seg in s.segments if seg.phone != "SIL"]
    assert spoken[:3] == ["W", "IY", "Y"]
    assert s.report["dictionary_hits"] == ["HTTP"]


def test_same_seed_same_audio_other_seed_differs(piper_http):
    again = synthesize("We use HTTP daily.", g2p_dict={"HTTP": DICTIONARY["HTTP"]}, seed=3)
    other = synthesize("We use HTTP daily.", g2p_dict={"HTTP": DICTIONARY["HTTP"]}, seed=4)
    assert np.array_equal(again.samples, piper_http.samples)
    assert not (len(other.samples) == len(again.samples) and np.array_equal(other.samples, again.samples))


def test_espeak_repeats_itself_whatever_was_said_before():
    # espeak-ng's library keeps state between utterances; a batch must not depend on order
    first = synthesize("Hello there, how are you today?", engine="espeak", seed=1)
    synthesize("Something else entirely, with more words.", engine="espeak", seed=1)
    again = synthesize("Hello there, how are you today?", engine="espeak", seed=1)
    assert np.array_equal(first.samples, again.samples)


def test_mandarin_polyphones_and_dictionary_in_phoneme_output():
    s = synthesize("重庆银行的行长说HTTP和AI很好。", lang="zh", g2p_dict=DICTIONARY)
    assert s.report["engine"] == "espeak"
    assert s.phonemes.startswith("chong2 qing4 yin2 hang2 de5 hang2 zhang3 shuo1")
    assert "EY1 CH T IY1 T IY1 P IY1" in s.phonemes and "ei4 ai4" in s.phonemes
    _tiles(s)
    phones = [seg.phone for seg in s.segments if seg.phone != "SIL"]
    assert phones[:3] == ["CH", "UH", "NG"]
    assert "EY CH T IY T IY P IY" in " ".join(phones)


def test_other_espeak_languages_and_sample_rates():
    s = synthesize("Guten Morgen, wie geht es dir?", lang="de", sample_rate=16_000)
    assert s.report["engine"] == "espeak" and s.sample_rate == 16_000
    _tiles(s)
    assert {"G", "M", "V", "IY"} <= {seg.phone for seg in s.segments}


def test_flite_output_is_force_aligned():
    s = synthesize("Bob bought a map.", engine="flite", engine_voice="kal")
    _tiles(s)
    phones = [seg.phone for seg in s.segments if seg.phone != "SIL"]
    assert phones[:3] == ["B", "AA", "B"]
    assert any("force-aligned" in w for w in s.report["warnings"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(text="   "), "empty"),
    (dict(text="a" * 2001), "limit is 2000"),
    (dict(text="hello", lang="xx"), "no installed TTS engine"),
    (dict(text="hello", lang="en!"), "not a language code"),
    (dict(text="hello", sample_rate=12345), "sample rate"),
    (dict(text="hello", seed=-1), "seed"),
    (dict(text="hello", engine="nope"), "unknown TTS engine"),
    (dict(text="?!", engine="espeak"), "nothing to pronounce"),
    (dict(text="HTTP", engine="festival", g2p_dict={"HTTP": "EY1 CH"}), "cannot use G2P"),
])
def test_bad_input_is_an_input_error(kwargs, message):
    text = kwargs.pop("text")
    with pytest.raises(InputError, match=message):
        synthesize(text, **kwargs)
