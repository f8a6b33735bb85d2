"""Notice prompts written mostly in Chinese, Japanese or Korean.

VibeThinker was trained and evaluated mainly in English and its authors say it works better
when asked in English. We never refuse a CJK prompt; we only attach a friendly advisory.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_CJK_THRESHOLD",
    "DEFAULT_CJK_MIN_LETTERS",
    "CJK_ADVISORY",
    "cjk_ratio",
    "cjk_advisory",
]

DEFAULT_CJK_THRESHOLD = 0.5
"""Share of CJK letters from which a text counts as mostly CJK."""

DEFAULT_CJK_MIN_LETTERS = 4
"""Below this many letters a text is too short to judge (a lone "好" in a formula is no signal).
Four is still low because CJK packs a word into one or two characters."""

CJK_ADVISORY = (
    "VibeThinker answers best in English; this prompt looks mostly Chinese, Japanese or Korean. "
    "The request still runs, but asking in English may give better results."
)

# Code point ranges (inclusive) of the scripts we count: Han ideographs (with extensions and
# compatibility forms, plus the iteration marks 々 〆), Hiragana, Katakana (with phonetic
# extensions and half-width forms) and Hangul (syllables and jamo).
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x1100, 0x11FF),    # Hangul Jamo
    (0x3005, 0x3006),    # 々 〆
    (0x3040, 0x309F),    # Hiragana
    (0x30A0, 0x30FF),    # Katakana
    (0x3130, 0x318F),    # Hangul Compatibility Jamo
    (0x31F0, 0x31FF),    # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),    # CJK Extension A
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0xA960, 0xA97F),    # Hangul Jamo Extended-A
    (0xAC00, 0xD7AF),    # Hangul Syllables
    (0xD7B0, 0xD7FF),    # Hangul Jamo Extended-B
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0xFF66, 0xFF9D),    # half-width Katakana
    (0x20000, 0x323AF),  # CJK Extensions B..H and compatibility supplement
)

# "\frac", "\sqrt", "\mathbb": command names are markup, not language, so an English question
# full of LaTeX is not diluted by them (and a Chinese one not hidden behind them).
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    if code < _CJK_RANGES[0][0]:  # fast path: Latin, Greek, Cyrillic ... never CJK
        return False
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _count_letters(text: str) -> tuple[int, int]:
    """(CJK letters, all letters) of `text`, LaTeX command names removed."""
    cjk = letters = 0
    for char in _LATEX_COMMAND.sub(" ", text):
        if char.isalpha():  # digits, punctuation, symbols and spaces are not letters
            letters += 1
            if _is_cjk(char):
                cjk += 1
    return cjk, letters


def cjk_ratio(text: str) -> float:
    """Share of letters in `text` that are Han, Hiragana, Katakana or Hangul (0.0 if none)."""
    cjk, letters = _count_letters(text)
    return cjk / letters if letters else 0.0


def cjk_advisory(
    text: str,
    *,
    threshold: float = DEFAULT_CJK_THRESHOLD,
    min_letters: int = DEFAULT_CJK_MIN_LETTERS,
) -> str | None:
    """A non-blocking advisory when `text` is mostly CJK, else None."""
    cjk, letters = _count_letters(text)
    if letters < min_letters or cjk / letters < threshold:
        return None
    return CJK_ADVISORY
