import pytest

from mouthpiece.speech import ARPABET, synthesize_with_timings
from mouthpiece.speech.reference_tts import festival_phone
from mouthpiece.types import InputError

from .conftest import assert_tiles, needs_festival, read_audio


def test_festival_phone_names_map_to_arpabet():
    assert festival_phone("pau") == "SIL"
    assert festival_phone("ax") == "AH"
    assert festival_phone("aa") == "AA"
    assert festival_phone("em") == "M"


def test_bob_timings_cover_the_file(bob):
    audio, segments = bob
    assert_tiles(segments, audio.duration_s)
    phones = [s.phone for s in segments]
    assert phones[0] == "SIL" and phones[-1] == "SIL"
    assert [p for p in phones if p != "SIL"] == (
        "B AA B B AO T M AY B IH G P AH P IY".split()
    )
    assert all(p in ARPABET or p == "SIL" for p in phones)


@needs_festival
def test_unknown_voice_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="voice"):
        synthesize_with_timings("hello", tmp_path / "x.wav", voice="no_such_voice")


@needs_festival
def test_quotes_and_numbers_in_text(tmp_path):
    path = tmp_path / "q.wav"
    segments = synthesize_with_timings('He said "42" twice.', path)
    audio = read_audio(path)
    assert audio.sample_rate == 16_000
    assert_tiles(segments, audio.duration_s)
    assert {"F", "AO", "R"} <= {s.phone for s in segments}  # "forty"
