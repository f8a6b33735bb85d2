"""The reply footer: the figures a finished reply shows."""

from vibe_edge.tui.widgets import COMPLETE, footer_text


def test_footer_shows_speed_tokens_and_draft_acceptance():
    text = footer_text(COMPLETE, {"decode_tps": 12.34, "ttft_ms": 250.0, "answer_tokens": 40,
                                  "acceptance": 0.625}, None)
    assert text == "12.3 tok/s · first token 250ms · 40 tokens · drafts 62% accepted"


def test_footer_without_drafts_says_nothing_about_them():
    assert "drafts" not in footer_text(COMPLETE, {"decode_tps": 10.0, "acceptance": None}, None)
