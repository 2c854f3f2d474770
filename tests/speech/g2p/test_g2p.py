import json

import pytest

from mouthpiece.speech.g2p import (
    PhoneChunk, ReplacementDictionary, TextChunk, arpabet_to_espeak, arpabet_to_ipa,
    han_to_pinyin, ipa_to_arpabet, normalize_text, pinyin_to_arpabet,
)
from mouthpiece.types import InputError


def test_english_normalisation_spells_numbers_dates_money_and_abbreviations():
    text = normalize_text("Dr. Lee paid $1,012.50 on 2024-05-01, the 3rd time; 45% of 1,234.", "en")
    assert text.startswith("doctor Lee paid one thousand and twelve dollars and fifty cents")
    assert "May first, twenty twenty four" in text
    assert "third time" in text and "forty five percent" in text
    assert "one thousand two hundred and thirty four" in text
    assert "1999" not in normalize_text("in 1999", "en") and "nineteen ninety nine" in normalize_text("in 1999", "en")


def test_mandarin_normalisation_uses_chinese_numerals():
    assert normalize_text("2024年5月1日增长了35%", "zh") == "二零二四年五月一日增长了百分之三十五"


def test_polyphones_follow_the_phrase_dictionary():
    assert han_to_pinyin("重庆银行的行长") == ["chong2", "qing4", "yin2", "hang2", "de5", "hang2", "zhang3"]


def test_dictionary_longest_match_first_and_whole_words_only():
    d = ReplacementDictionary.from_pairs({"AI": "ei4 ai4", "AIGC": "EY1 AY1 JH IY1 S IY1",
                                          "重庆": "chong2 qing4"})
    chunks = d.split("重庆 AIGC and AI, SAID")
    assert chunks[0] == PhoneChunk("重庆", ("chong2", "qing4"), "pinyin")
    assert PhoneChunk("AIGC", ("EY1", "AY1", "JH", "IY1", "S", "IY1"), "arpabet") in chunks
    assert PhoneChunk("AI", ("ei4", "ai4"), "pinyin") in chunks
    assert chunks[-1] == TextChunk(", SAID")  # "AI" inside "SAID" is not replaced


def test_dictionary_file_errors_name_the_line(tmp_path):
    good = tmp_path / "ok.jsonl"
    good.write_text(json.dumps({"grapheme": "HTTP", "phoneme": "EY1 CH T IY1 T IY1 P IY1"}) + "\n\n")
    assert len(ReplacementDictionary.load(good)) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"grapheme": "x", "phoneme": "EY1"}\n{"grapheme": "y", "phoneme": "QQ9"}\n')
    with pytest.raises(InputError, match="line 2"):
        ReplacementDictionary.load(bad)
    bad.write_text("not json\n")
    with pytest.raises(InputError, match="line 1: not JSON"):
        ReplacementDictionary.load(bad)
    with pytest.raises(InputError, match="no such file"):
        ReplacementDictionary.load(tmp_path / "missing.jsonl")


def test_phone_set_conversions_round_trip():
    phones = "EY1 CH T IY1 T IY1 P IY1".split()
    assert arpabet_to_ipa(phones) == "ˈeɪtʃtˈiːtˈiːpˈiː"
    assert arpabet_to_espeak("HH AH0 L OW1".split()) == "h@l'oU"
    assert [p for tok in ["eɪ", "tʃ", "t", "iː"] for p in ipa_to_arpabet(tok)] == ["EY", "CH", "T", "IY"]
    assert pinyin_to_arpabet("chong2") == ["CH", "UH1", "NG"]
    assert pinyin_to_arpabet("xue2") == ["SH", "UW1", "EH1"]
    assert pinyin_to_arpabet("zhi1") == ["JH", "ER1"]
    assert ipa_to_arpabet("ts.h") == ["CH"]
