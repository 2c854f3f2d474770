"""The user's pronunciation (replacement) dictionary, applied to the text BEFORE G2P.

One JSON object a line: `{"grapheme": "重庆", "phoneme": "chong2 qing4"}` (numbered pinyin) or
`{"grapheme": "HTTP", "phoneme": "EY1 CH T IY1 T IY1 P IY1"}` (ARPAbet, stress digits
optional). Matching is case-sensitive and longest-first; a Latin/digit grapheme only matches
as a whole word (so "AI" does not fire inside "SAID"), Han graphemes match anywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mouthpiece.speech.g2p.mandarin import is_pinyin
from mouthpiece.speech.g2p.phonesets import split_stress
from mouthpiece.types import InputError

MAX_ENTRIES = 10_000
MAX_FILE_BYTES = 2_000_000


@dataclass(frozen=True)
class TextChunk:
    """Text the engine's own G2P reads."""

    text: str


@dataclass(frozen=True)
class PhoneChunk:
    """A dictionary hit: `phones` are ARPAbet tokens (`kind="arpabet"`) or numbered pinyin
    syllables (`kind="pinyin"`)."""

    grapheme: str
    phones: tuple[str, ...]
    kind: str


Chunk = TextChunk | PhoneChunk


@dataclass(frozen=True)
class Entry:
    grapheme: str
    phones: tuple[str, ...]
    kind: str


def parse_phoneme(phoneme: str, where: str) -> tuple[tuple[str, ...], str]:
    """(tokens, kind) for a dictionary phoneme string; InputError if it is neither notation."""
    if is_pinyin(phoneme):
        return tuple(t.lower() for t in phoneme.split()), "pinyin"
    tokens = phoneme.split()
    try:
        for token in tokens:
            split_stress(token)
    except ValueError as exc:
        raise InputError(
            f"{where}: phoneme {phoneme!r} is neither ARPAbet (e.g. \"EY1 CH T IY1\") nor "
            f"numbered pinyin (e.g. \"chong2 qing4\"): {exc}"
        ) from None
    if not tokens:
        raise InputError(f"{where}: empty phoneme")
    return tuple(tokens), "arpabet"


class ReplacementDictionary:
    """Grapheme → pronunciation entries with longest-match-first splitting of text."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = {e.grapheme: e for e in entries}
        ordered = sorted(self.entries, key=len, reverse=True)
        parts = []
        for grapheme in ordered:
            escaped = re.escape(grapheme)
            if re.search(r"[A-Za-z0-9]", grapheme):
                escaped = rf"(?<![A-Za-z0-9']){escaped}(?![A-Za-z0-9])"
            parts.append(escaped)
        self._pattern = re.compile("|".join(parts)) if parts else None

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_pairs(cls, pairs: dict[str, str]) -> "ReplacementDictionary":
        entries = []
        for grapheme, phoneme in pairs.items():
            phones, kind = parse_phoneme(phoneme, f"entry {grapheme!r}")
            entries.append(Entry(grapheme, phones, kind))
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path) -> "ReplacementDictionary":
        """Read a JSONL dictionary; every malformed line is an InputError naming the line."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"G2P dictionary {path}: no such file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"G2P dictionary {path} is larger than {MAX_FILE_BYTES} bytes")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(f"G2P dictionary {path} is not UTF-8 text: {exc}") from None
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path.name} line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(item, dict) or not isinstance(item.get("grapheme"), str) \
                    or not isinstance(item.get("phoneme"), str) or not item["grapheme"].strip():
                raise InputError(f'{where}: expected {{"grapheme": "…", "phoneme": "…"}}')
            phones, kind = parse_phoneme(item["phoneme"], where)
            entries.append(Entry(item["grapheme"].strip(), phones, kind))
            if len(entries) > MAX_ENTRIES:
                raise InputError(f"G2P dictionary {path} has more than {MAX_ENTRIES} entries")
        return cls(entries)

    def split(self, text: str) -> list[Chunk]:
        """`text` cut into plain-text chunks and dictionary hits (longest match first)."""
        if self._pattern is None:
            return [TextChunk(text)] if text else []
        chunks: list[Chunk] = []
        cursor = 0
        for match in self._pattern.finditer(text):
            if match.start() > cursor:
                chunks.append(TextChunk(text[cursor:match.start()]))
            entry = self.entries[match.group(0)]
            chunks.append(PhoneChunk(entry.grapheme, entry.phones, entry.kind))
            cursor = match.end()
        if cursor < len(text):
            chunks.append(TextChunk(text[cursor:]))
        return chunks
