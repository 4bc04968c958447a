"""Writes scrm/faq_pinyin.txt: toneless pinyin -> the CJK characters read that way (first reading, from pypinyin).

Why a file: pypinyin costs ~50 MB and ~200 ms per process at import; the matcher only needs one syllable per
character, so the table ships as data and pypinyin stays a dev dependency. Re-run after a pypinyin upgrade.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from pathlib import Path

from pypinyin.pinyin_dict import pinyin_dict

OUT = Path(__file__).resolve().parents[2] / "scrm" / "faq_pinyin.txt"


def toneless(reading: str) -> str:
    """The first reading without tone marks (ü kept as v)."""
    first = reading.split(",")[0]
    plain = unicodedata.normalize("NFD", first.replace("ü", "v"))
    return "".join(c for c in plain if not unicodedata.combining(c)).lower()


def main() -> None:
    by_syllable: dict[str, list[str]] = defaultdict(list)
    for code, reading in pinyin_dict.items():
        if 0x4E00 <= code <= 0x9FFF:
            by_syllable[toneless(reading)].append(chr(code))
    lines = [f"{syl} {''.join(chars)}" for syl, chars in sorted(by_syllable.items()) if syl.isalpha()]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(lines)} syllables, {sum(len(v) for v in by_syllable.values())} characters")


if __name__ == "__main__":
    main()
