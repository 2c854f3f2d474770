import numpy as np

from mouthpiece.motion.visemes import (
    JAW, PRESS, ROUND, TUCK, VISEME_OF_PHONE, VISEMES, articulation, expand_phone,
    normalize_phone,
)

ARPABET = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T "
           "TH UH UW V W Y Z ZH").split()


def test_every_arpabet_phone_and_silence_has_a_viseme_and_all_15_are_used():
    assert len(ARPABET) == 39
    for phone in ARPABET + ["SIL"]:
        assert VISEME_OF_PHONE[phone] in VISEMES
        art = articulation(phone)
        assert art.target.shape == art.dominance.shape == (7,)
        assert np.all((art.target >= 0) & (art.target <= 1)) and np.all(art.dominance > 0)
    assert set(VISEME_OF_PHONE.values()) == set(VISEMES) and len(VISEMES) == 15


def test_dominance_ownership():
    bilabial_press = articulation("P").dominance[PRESS]
    assert all(bilabial_press >= articulation(p).dominance[PRESS] for p in ARPABET)
    assert articulation("P").target[PRESS] == 1.0
    assert articulation("F").dominance[TUCK] == max(articulation(p).dominance[TUCK]
                                                    for p in ARPABET)
    # vowels drive the jaw, velars/alveolars/H take it from their neighbours
    for consonant in ("K", "G", "HH", "T", "D"):
        assert articulation(consonant).dominance[JAW] < articulation("AA").dominance[JAW] / 3
    assert articulation("AA").target[JAW] > articulation("AE").target[JAW] > \
        articulation("EH").target[JAW] > articulation("IY").target[JAW]
    assert articulation("UW").target[ROUND] > 0.9


def test_phone_normalisation_and_diphthongs():
    assert normalize_phone("aa1") == "AA" and normalize_phone("sp") == "SIL"
    assert articulation("XX").viseme == "unknown"  # foreign symbol: weak half-open pose
    parts = expand_phone("AY", 1.0, 1.2)
    assert [p for p, _, _ in parts] == ["AA", "IY"]
    assert parts[0][1] == 1.0 and parts[1][2] == 1.2 and parts[0][2] == parts[1][1]
