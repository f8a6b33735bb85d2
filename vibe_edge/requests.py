"""The one request policy: a preset, what the user set, and where the request runs -> the
GenerationRequest the engine gets.

The HTTP API (vibe_edge.server), `vibe-edge run` and the chat (vibe_edge.tui) all build their
requests here, so the same preset and the same overrides make the same request everywhere
(tests/test_requests.py builds one on each surface and compares them). Precedence, later wins:

    the preset  <  the surface's defaults (settings, serve's flags)  <  the user's overrides

What each surface parses (flags, a JSON body, the chat's saved options) stays with the surface;
what the values mean is decided here. The engine keeps only its hard invariants: it clamps the
thinking budget again against the room actually left after the prompt, which only it knows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vibe_edge.defaults import DEFAULT_LOOP_GUARD, MAX_STOP_STRINGS, UNLIMITED_THINKING
from vibe_edge.errors import InvalidRequest
from vibe_edge.presets import Preset, apply_preset, get_preset
from vibe_edge.types import (
    GenerationRequest,
    ReasoningOptions,
    SamplingParams,
    StructuredOutput,
    thinking_budget_ceiling,
)

__all__ = ["Limits", "Overrides", "build_request", "resolve_thinking_budget", "stop_list"]

_SEED_RANGE = 2**32


@dataclass(frozen=True)
class Overrides:
    """Values a user (or a surface's defaults) set; None means "not set: the next layer's".

    thinking_budget is in user units, as llama.cpp's --reasoning-budget: a number of tokens, 0 for
    no thinking, -1 for no budget. system_prompt becomes the conversation's first message (the
    preset's system prompt is then not added). top_p 0 means greedy, as OpenAI reads it.
    """

    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    logit_bias: Mapping[int, float] | None = None
    structured_output: StructuredOutput | None = None
    stop: str | Sequence[str] | None = None
    max_tokens: int | None = None
    thinking_budget: int | None = None
    loop_guard: bool | None = None
    deadline_s: float | None = None
    speculative: bool | None = None  # None: the engine's setting

    def over(self, lower: Overrides) -> Overrides:
        """These values where set, else `lower`'s."""
        return Overrides(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                            else getattr(lower, f.name) for f in dataclasses.fields(self)})


@dataclass(frozen=True)
class Limits:
    """Where the request runs: the slot's context (None: unknown, e.g. a remote server), the
    most tokens a request may generate whatever it asks (settings.max_tokens) and the longest
    deadline it may ask for (None: the engine's timeout)."""

    ctx_per_slot: int | None = None
    max_tokens: int | None = None
    max_deadline_s: float | None = None


def resolve_thinking_budget(asked: int | None, default: int | None) -> int | None:
    """A thinking budget in user units -> the engine's (ReasoningOptions: None is no budget)."""
    if asked is None:
        return default
    return None if asked == UNLIMITED_THINKING else asked


def stop_list(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    """One stop string or several -> a tuple without empty strings (at most MAX_STOP_STRINGS)."""
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else list(stop)
    stops = [s for s in stops if s != ""]
    if len(stops) > MAX_STOP_STRINGS:
        raise InvalidRequest(f"stop takes at most {MAX_STOP_STRINGS} strings, got {len(stops)}",
                             param="stop")
    return tuple(stops)


def build_request(
    preset: Preset | str,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    prompt: str | None = None,
    overrides: Overrides = Overrides(),
    defaults: Overrides = Overrides(),
    limits: Limits = Limits(),
    apply_prompts: bool = True,
    request_id: str | None = None,
) -> GenerationRequest:
    """The request for one chat (`messages`) or raw completion (`prompt`).

    apply_prompts: add the preset's system prompt and user suffix to the messages (the server
    does so only when a request names its preset). Raises InvalidRequest naming the parameter.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    values = overrides.over(defaults)
    for param, text in (("messages", messages), ("prompt", prompt), ("stop", values.stop),
                        ("system_prompt", values.system_prompt)):
        _check_text(text, param)

    if messages is not None:
        messages = [dict(m) for m in messages]
        if values.system_prompt:
            messages.insert(0, {"role": "system", "content": values.system_prompt})
        if apply_prompts:
            messages = apply_preset(preset, messages)

    limit = values.max_tokens if values.max_tokens is not None else preset.max_tokens
    if limits.max_tokens is not None:
        limit = min(limit, limits.max_tokens)
    budget = resolve_thinking_budget(values.thinking_budget, preset.thinking_budget)
    if budget:  # 0 (no thinking) stays 0; a budget must leave room to answer within the limit
        room = min(limit, limits.ctx_per_slot) if limits.ctx_per_slot else limit
        budget = min(budget, thinking_budget_ceiling(room))
    deadline = values.deadline_s
    if deadline is not None and limits.max_deadline_s is not None:
        deadline = min(deadline, limits.max_deadline_s)

    request = GenerationRequest(
        prompt=prompt,
        messages=messages,
        sampling=_sampling(preset.sampling, values),
        max_tokens=limit,
        stop=stop_list(values.stop),
        reasoning=ReasoningOptions(thinking_budget=budget,
                                   loop_guard=values.loop_guard if values.loop_guard is not None
                                   else DEFAULT_LOOP_GUARD),
        deadline_s=deadline,
        speculative=values.speculative,
    )
    if request_id is not None:
        request.request_id = request_id
    request.validate()
    return request


def _sampling(base: SamplingParams, values: Overrides) -> SamplingParams:
    changes: dict[str, Any] = {}
    for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty",
                 "frequency_penalty", "structured_output"):
        value = getattr(values, name)
        if value is not None:
            changes[name] = value
    if changes.get("top_p") == 0.0:  # only the most likely token survives: that is greedy
        changes["temperature"], changes["top_p"] = 0.0, 1.0
    if values.seed is not None:
        changes["seed"] = values.seed % _SEED_RANGE  # OpenAI takes any integer, llama.cpp 32 bits
    if values.logit_bias:
        changes["logit_bias"] = dict(values.logit_bias)
    return dataclasses.replace(base, **changes)


def _check_text(value: Any, param: str) -> None:
    """Lone surrogates (from a JSON escape, or undecodable terminal input) cannot be tokenized:
    say so by parameter instead of failing inside the tokenizer."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{param} holds text that is not valid Unicode (a lone "
                                 "surrogate escape)", param=param) from None
    elif isinstance(value, Mapping):
        for item in value.values():
            _check_text(item, param)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_text(item, param)
