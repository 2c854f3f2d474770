"""Text normalisation before G2P: numbers, dates, symbols and abbreviations become words.

English uses `num2words`; Mandarin uses `cn2an` (Arabic numerals → Chinese numerals, with
dates, percentages and negative/decimal numbers handled by its `an2cn` transform).
"""

from __future__ import annotations

import re
import unicodedata

_EN_ABBREVIATIONS = {
    "mr.": "mister", "mrs.": "missus", "ms.": "miz", "dr.": "doctor", "prof.": "professor",
    "st.": "saint", "jr.": "junior", "sr.": "senior", "vs.": "versus", "etc.": "et cetera",
    "e.g.": "for example", "i.e.": "that is", "approx.": "approximately", "no.": "number",
}
_EN_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at ", "=": " equals ",
               "°C": " degrees celsius ", "°F": " degrees fahrenheit ", "°": " degrees "}
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_CURRENCY = re.compile(r"([$€£])(\d(?:[\d,]*\d)?(?:\.\d+)?)")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\d(?:[\d,]*\d)?(?:\.\d+)?")
_CURRENCY_NAMES = {"$": ("dollars", "cents"), "€": ("euros", "cents"), "£": ("pounds", "pence")}


def _words(number: str, **kwargs) -> str:
    from num2words import num2words

    return num2words(number, lang="en", **kwargs).replace("-", " ").replace(",", "")


def _en_date(match: re.Match) -> str:
    year, month, day = (int(g) for g in match.groups())
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return match.group(0)
    return f"{_MONTHS[month - 1]} {_words(day, to='ordinal')}, {_words(year, to='year')}"


def _en_currency(match: re.Match) -> str:
    major_name, minor_name = _CURRENCY_NAMES[match.group(1)]
    whole, _, frac = match.group(2).replace(",", "").partition(".")
    text = f"{_words(int(whole))} {major_name}"
    if frac and int(frac[:2].ljust(2, "0")):
        text += f" and {_words(int(frac[:2].ljust(2, '0')))} {minor_name}"
    return f" {text} "


def _en_number(match: re.Match) -> str:
    token = match.group(0)
    if re.fullmatch(r"(1[1-9]|20)\d\d", token):  # 4-digit numbers 1100–2099 read as years
        return f" {_words(int(token), to='year')} "
    negative = token.startswith("-")
    token = token.lstrip("-").replace(",", "")
    whole, _, frac = token.partition(".")
    text = _words(int(whole))
    if frac:
        text += " point " + " ".join(_words(int(d)) for d in frac)
    return f" {'minus ' if negative else ''}{text} "


def normalize_english(text: str) -> str:
    """Spoken-form English: numbers, years, ordinals, ISO dates, currency, symbols, common
    abbreviations ("Dr." → "doctor") written out. Punctuation is kept for prosody."""
    text = unicodedata.normalize("NFKC", text)
    text = _ISO_DATE.sub(_en_date, text)
    text = _CURRENCY.sub(_en_currency, text)
    text = _ORDINAL.sub(lambda m: f" {_words(int(m.group(1)), to='ordinal')} ", text)
    for symbol, word in _EN_SYMBOLS.items():
        text = text.replace(symbol, word)
    text = _NUMBER.sub(_en_number, text)

    def abbreviation(match: re.Match) -> str:
        return _EN_ABBREVIATIONS.get(match.group(0).lower(), match.group(0))

    pattern = "|".join(re.escape(a) for a in sorted(_EN_ABBREVIATIONS, key=len, reverse=True))
    text = re.sub(rf"(?<!\w)(?:{pattern})", abbreviation, text, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", text).strip()


def normalize_mandarin(text: str) -> str:
    """Spoken-form Mandarin: Arabic numerals, dates, percentages → Chinese numerals (cn2an)."""
    import cn2an

    text = unicodedata.normalize("NFKC", text)
    if re.search(r"\d", text):
        text = cn2an.transform(text, "an2cn")
    return re.sub(r"\s+", " ", text).strip()


def normalize_text(text: str, lang: str) -> str:
    """Normalise `text` for language `lang` ("en", "zh"; other languages pass through NFKC)."""
    if lang == "en":
        return normalize_english(text)
    if lang == "zh":
        return normalize_mandarin(text)
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()
