"""ChatOptions: what the chat's settings mean once they reach a request, and saved options
from older versions keep their meaning."""

from __future__ import annotations

import pytest

from vibe_edge.presets import get_preset
from vibe_edge.errors import InvalidRequest
from vibe_edge.tui.options import ChatOptions, build_request


def test_thinking_budget_options_mean_what_they_mean_everywhere():
    math = get_preset("math")
    assert ChatOptions(preset="math").effective()["thinking_budget"] == math.thinking_budget
    assert ChatOptions(preset="math", thinking_budget=0).effective()["thinking_budget"] == 0
    assert ChatOptions(preset="math", thinking_budget=-1).effective()["thinking_budget"] is None
    request = build_request(ChatOptions(preset="math", thinking_budget=0), [("user", "3+4?")])
    assert request.reasoning.thinking_budget == 0  # no thinking reaches the engine as such
    # Options saved before version 2 wrote 0 for "no budget": they keep meaning that.
    assert ChatOptions.from_dict({"preset": "math", "thinking_budget": 0}).thinking_budget == -1
    saved = ChatOptions(preset="math", thinking_budget=0).to_dict()
    assert ChatOptions.from_dict(saved).thinking_budget == 0
    with pytest.raises(InvalidRequest):
        ChatOptions(thinking_budget=-2).validate()

    # A damaged saved version falls back to the defaults instead of stopping the chat.
    assert ChatOptions.from_dict({"preset": "code", "version": "two"}) == ChatOptions()
