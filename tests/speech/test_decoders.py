"""The word decoder's dictionary: CMUdict cut to the language model's words, derived once."""

from __future__ import annotations

import pocketsphinx

from mouthpiece.speech import decoders
from mouthpiece.speech.recognize import WORD_PAD_S, decode_words


def _entries(path) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        return dict(line.rstrip("\n").split(" ", 1) for line in fh)


def test_word_dictionary_keeps_exactly_the_language_models_words(tmp_path):
    target = tmp_path / "words.dict"
    decoders.write_word_dictionary(target)
    full, cut = _entries(decoders._model_paths()["dict"]), _entries(target)
    model = pocketsphinx.NGramModel.readfile(decoders._model_paths()["lm"])
    unknown = model.prob(["<unk>"])
    assert set(cut) < set(full)
    assert all(cut[entry] == full[entry] for entry in cut)  # pronunciations untouched
    for entry in list(full)[::997]:  # a sample of every kind of entry, variants included
        word = entry.split("(", 1)[0]
        assert (entry in cut) == (model.prob([word]) != unknown), entry
    assert cut["the"] == full["the"] and cut["the(2)"] == full["the(2)"]
    assert list(cut) == [e for e in full if e in cut]  # CMUdict's order: deterministic


def test_recognised_words_are_those_of_the_full_dictionary(bob, monkeypatch):
    """Words outside the language model are never hypothesised: the cut changes nothing."""
    audio, _ = bob
    pcm = decoders.padded_pcm(audio, WORD_PAD_S)
    cut_words = decode_words(pcm)
    monkeypatch.setattr(decoders, "word_dictionary", lambda: decoders._model_paths()["dict"])
    decoders.word_recognizer.cache_clear()
    try:
        assert decode_words(pcm) == cut_words
    finally:
        decoders.word_recognizer.cache_clear()
    assert len(cut_words) >= 4


def test_unwritable_installation_falls_back_to_the_full_dictionary(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(decoders, "word_dictionary_path", lambda: blocked / "sub" / "w.dict")
    assert decoders.word_dictionary() == decoders._model_paths()["dict"]
