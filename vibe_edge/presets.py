"""Ready-made settings for what VibeThinker is good at: math, code, and a general fallback.

Values follow the model's official recommendations (see shared/VIBETHINKER.md): temperature
1.0 for math and 0.6 for code, top_p 0.95, top_k and min_p off, and room to think (greedy
decoding and short limits both hurt it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vibe_edge.defaults import DEFAULT_PRESET
from vibe_edge.errors import InvalidRequest
from vibe_edge.text.template import normalize_messages
from vibe_edge.types import SamplingParams

__all__ = [
    "DEFAULT_PRESET",
    "MATH_SYSTEM_PROMPT",
    "MATH_USER_SUFFIX",
    "CODE_SYSTEM_PROMPT",
    "Preset",
    "PRESETS",
    "get_preset",
    "apply_preset",
]

MATH_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""The Qwen2.5-Math template's own default system prompt, which VibeThinker was built on."""

MATH_USER_SUFFIX = "\n\nLet's think step by step and output the final answer within \\boxed{}."
"""The instruction the official math evaluation appends to each problem."""

# Without a system message, the Qwen2.5-Math template inserts its own "put your final answer
# within \boxed{}" prompt: a general chat needs a neutral one to avoid that.
GENERAL_SYSTEM_PROMPT = "You are a helpful assistant."

CODE_SYSTEM_PROMPT = (
    "You are an expert Python programmer. Think the problem through carefully, then give your "
    "complete solution as Python code in a single fenced code block (```python ... ```)."
)

# The model's published limit for generated tokens: its benchmark results were measured with it.
_MAX_GENERATION = 40960
# Most of that may go to thinking; the rest is kept for the answer after </think>.
_ANSWER_RESERVE = 8192

_TOP_P = 0.95


@dataclass(frozen=True)
class Preset:
    """A named bundle of prompt and sampling settings.

    max_tokens may exceed a slot's context: the engine clamps it. thinking_budget None means
    no budget (the loop guard and max_tokens still apply).
    """

    name: str
    description: str
    system_prompt: str | None
    user_suffix: str | None
    sampling: SamplingParams
    max_tokens: int
    thinking_budget: int | None

    def __post_init__(self) -> None:
        self.sampling.validate()
        if self.max_tokens < 1:
            raise ValueError(f"preset {self.name!r}: max_tokens must be >= 1")
        if self.thinking_budget is not None and not 1 <= self.thinking_budget < self.max_tokens:
            # A budget at or above max_tokens would never fire and leave no room to answer.
            raise ValueError(f"preset {self.name!r}: thinking_budget must be in [1, max_tokens)")


def _sampling(temperature: float) -> SamplingParams:
    # top_k 0 and min_p 0 switch those filters off, as the model's authors recommend.
    return SamplingParams(temperature=temperature, top_p=_TOP_P, top_k=0, min_p=0.0)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="math",
            description="Competition math: reasons at length, final answer in \\boxed{}.",
            system_prompt=MATH_SYSTEM_PROMPT,
            user_suffix=MATH_USER_SUFFIX,
            sampling=_sampling(1.0),
            max_tokens=_MAX_GENERATION,
            thinking_budget=_MAX_GENERATION - _ANSWER_RESERVE,
        ),
        Preset(
            name="code",
            description="Algorithmic coding: reasons, then answers with Python in a code block.",
            system_prompt=CODE_SYSTEM_PROMPT,
            user_suffix=None,
            sampling=_sampling(0.6),
            max_tokens=_MAX_GENERATION,
            thinking_budget=_MAX_GENERATION - _ANSWER_RESERVE,
        ),
        Preset(
            name="general",
            description="Anything else (outside the model's specialty): shorter limits.",
            system_prompt=GENERAL_SYSTEM_PROMPT,
            user_suffix=None,
            sampling=_sampling(0.6),
            max_tokens=8192,
            thinking_budget=6144,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; InvalidRequest (param "preset") listing the choices if none."""
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise InvalidRequest(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}",
                             param="preset")
    return preset


def apply_preset(preset: Preset, messages: Sequence[Any]) -> list[dict[str, str]]:
    """Return new, normalized messages with the preset's prompts applied.

    The system prompt is inserted only when the conversation has none (the caller's wins), and
    the suffix is appended to the last user message unless that message already contains it,
    so applying a preset twice changes nothing more.
    """
    result = normalize_messages(messages)  # fresh dicts: the caller's list is never touched
    if preset.user_suffix:
        for message in reversed(result):
            if message["role"] == "user":
                if preset.user_suffix.strip() not in message["content"]:
                    message["content"] += preset.user_suffix
                break
    if preset.system_prompt is not None and not any(m["role"] == "system" for m in result):
        result.insert(0, {"role": "system", "content": preset.system_prompt})
    return result
