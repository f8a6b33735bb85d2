"""cjk_ratio / cjk_advisory: a friendly note for prompts written mostly in CJK."""

from __future__ import annotations

import pytest

from vibe_edge.text.language import (
    CJK_ADVISORY,
    DEFAULT_CJK_MIN_LETTERS,
    DEFAULT_CJK_THRESHOLD,
    cjk_advisory,
    cjk_ratio,
)


@pytest.mark.parametrize(
    "text,ratio",
    [
        ("", 0.0),
        ("12 + 34 = 46 !?", 0.0),              # no letters at all
        ("Solve for x", 0.0),
        ("求解方程", 1.0),                       # Han
        ("ひらがなカタカナ", 1.0),               # Hiragana, Katakana
        ("방정식을 풀어라", 1.0),                # Hangul (the space is not a letter)
        ("ｶﾀｶﾅ", 1.0),                          # half-width Katakana
        ("求解 ab", 0.5),
        ("x^2 + 1 = 0 求解", 2 / 3),             # the single x counts, digits and symbols do not
        ("Résumé naïve", 0.0),                  # accented Latin is not CJK
        ("Решите уравнение", 0.0),              # Cyrillic neither
    ],
)
def test_cjk_ratio(text: str, ratio: float) -> None:
    assert cjk_ratio(text) == pytest.approx(ratio)


def test_latex_commands_are_not_letters() -> None:
    # Without ignoring \frac, \sqrt ... the Latin command names would outnumber the Chinese.
    text = r"求 \frac{\sqrt{\alpha}}{\beta} 的最小值"
    assert cjk_ratio(text) == 1.0
    assert cjk_advisory(text) == CJK_ADVISORY


def test_advisory_for_mostly_cjk_prompts() -> None:
    message = cjk_advisory("已知三角形的三边长分别为3、4、5，求它的面积。")
    assert message == CJK_ADVISORY
    assert "English" in message and "still runs" in message
    assert cjk_advisory("三角形の面積を求めなさい") == CJK_ADVISORY
    assert cjk_advisory("삼각형의 넓이를 구하시오") == CJK_ADVISORY


def test_no_advisory_for_english_or_mixed_english() -> None:
    assert cjk_advisory("What is the area of a 3-4-5 triangle?") is None
    assert cjk_advisory("Translate 你好 into English please, thanks") is None
    assert cjk_advisory("") is None


def test_too_short_to_judge() -> None:
    short = "你好吗"[: DEFAULT_CJK_MIN_LETTERS - 1]
    assert cjk_ratio(short) == 1.0
    assert cjk_advisory(short) is None
    assert cjk_advisory("你好吗呀"[:DEFAULT_CJK_MIN_LETTERS]) == CJK_ADVISORY


def test_threshold_is_inclusive() -> None:
    text = "求解方程 abcd"  # exactly half
    assert cjk_ratio(text) == DEFAULT_CJK_THRESHOLD
    assert cjk_advisory(text) == CJK_ADVISORY
    assert cjk_advisory("求解方程 abcde") is None
    assert cjk_advisory("求解方程 abcde", threshold=0.4) == CJK_ADVISORY
