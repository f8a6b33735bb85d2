"""Presets: VibeThinker's recommended settings and how they are applied to a conversation."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from vibe_edge.presets import (
    GENERAL_SYSTEM_PROMPT,
    CODE_SYSTEM_PROMPT,
    DEFAULT_PRESET,
    MATH_SYSTEM_PROMPT,
    MATH_USER_SUFFIX,
    PRESETS,
    Preset,
    apply_preset,
    get_preset,
)
from vibe_edge.text.template import render_chat
from vibe_edge.types import SamplingParams
from vibe_edge.errors import InvalidRequest

QWEN_MATH_CONFIG = (Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
                    / "qwen2.5-math-1.5b" / "tokenizer_config.json")


def test_recommended_sampling() -> None:
    math, code, general = PRESETS["math"], PRESETS["code"], PRESETS["general"]
    assert (math.sampling.temperature, code.sampling.temperature, general.sampling.temperature) == (
        1.0, 0.6, 0.6)
    for preset in (math, code, general):
        assert preset.sampling.top_p == 0.95
        assert preset.sampling.top_k == 0      # off
        assert preset.sampling.min_p == 0.0    # off
        assert not preset.sampling.greedy      # greedy decoding hurts this model
        preset.sampling.validate()


def test_prompts_and_limits() -> None:
    math, code, general = PRESETS["math"], PRESETS["code"], PRESETS["general"]
    assert math.system_prompt == MATH_SYSTEM_PROMPT == (
        "Please reason step by step, and put your final answer within \\boxed{}.")
    assert "\\boxed{}" in math.user_suffix
    assert math.max_tokens == 40960
    assert math.thinking_budget is None or math.thinking_budget >= 16384
    assert code.system_prompt == CODE_SYSTEM_PROMPT
    assert "Python" in code.system_prompt and "```" in code.system_prompt
    assert general.system_prompt == GENERAL_SYSTEM_PROMPT and general.user_suffix is None
    assert general.max_tokens == 8192
    for preset in PRESETS.values():
        # a budget leaves room to answer after the engine closes the think block
        assert preset.thinking_budget is None or preset.thinking_budget < preset.max_tokens
        assert preset.name and preset.description


def test_default_and_lookup() -> None:
    assert DEFAULT_PRESET == "math"
    assert get_preset(DEFAULT_PRESET) is PRESETS["math"]
    for name, preset in PRESETS.items():
        assert get_preset(name) is preset and preset.name == name


@pytest.mark.parametrize("name", ["poetry", "", "MATH", None])
def test_unknown_preset(name: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        get_preset(name)  # type: ignore[arg-type]
    assert info.value.param == "preset"
    for choice in ("math", "code", "general"):
        assert choice in info.value.message


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["math"].max_tokens = 1  # type: ignore[misc]


def test_preset_validation() -> None:
    with pytest.raises(ValueError):
        Preset("x", "x", None, None, SamplingParams(), max_tokens=100, thinking_budget=100)
    with pytest.raises(InvalidRequest):
        Preset("x", "x", None, None, SamplingParams(top_p=2.0), max_tokens=100, thinking_budget=None)


def test_apply_inserts_system_prompt_and_suffix() -> None:
    messages = [{"role": "user", "content": "Find x if 2x = 6."}]
    original = copy.deepcopy(messages)
    result = apply_preset(get_preset("math"), messages)
    assert result == [
        {"role": "system", "content": MATH_SYSTEM_PROMPT},
        {"role": "user", "content": "Find x if 2x = 6." + MATH_USER_SUFFIX},
    ]
    assert messages == original  # never mutated


def test_apply_keeps_the_callers_system_prompt() -> None:
    for role in ("system", "developer"):
        messages = [{"role": role, "content": "Mine."}, {"role": "user", "content": "Q"}]
        result = apply_preset(get_preset("code"), messages)
        assert result == [{"role": "system", "content": "Mine."}, {"role": "user", "content": "Q"}]


def test_suffix_goes_to_the_last_user_message_only_once() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
        {"role": "assistant", "content": None},
    ]
    original = copy.deepcopy(messages)
    once = apply_preset(get_preset("math"), messages)
    assert once[1]["content"] == "first"
    assert once[3]["content"] == "second" + MATH_USER_SUFFIX
    assert apply_preset(get_preset("math"), once) == once  # idempotent
    assert messages == original


def test_suffix_already_written_by_the_user_is_not_repeated() -> None:
    text = "Compute 3!. " + MATH_USER_SUFFIX.strip()
    result = apply_preset(get_preset("math"), [{"role": "user", "content": text}])
    assert result[-1]["content"] == text


def test_no_user_message_no_suffix() -> None:
    result = apply_preset(get_preset("math"), [{"role": "system", "content": "S"}])
    assert result == [{"role": "system", "content": "S"}]


def test_general_gets_a_neutral_system_prompt_not_the_templates_math_one() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    assert apply_preset(get_preset("general"), messages) == [
        {"role": "system", "content": GENERAL_SYSTEM_PROMPT}, *messages]


def test_bad_messages_are_rejected() -> None:
    with pytest.raises(InvalidRequest):
        apply_preset(get_preset("math"), [])


def test_math_preset_renders_one_system_block_with_the_real_template() -> None:
    template = json.loads(QWEN_MATH_CONFIG.read_text(encoding="utf-8"))["chat_template"]
    prompt = render_chat(apply_preset(get_preset("math"), [{"role": "user", "content": "1+1?"}]),
                         template=template)
    assert prompt.count("<|im_start|>system") == 1
    assert prompt.count(MATH_SYSTEM_PROMPT) == 1
    assert prompt.endswith("1+1?" + MATH_USER_SUFFIX + "<|im_end|>\n<|im_start|>assistant\n")
