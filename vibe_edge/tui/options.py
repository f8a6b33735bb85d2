"""What the user tunes for a reply (preset, system prompt, sampling, limits), saved between
sessions, and the request it turns into through the one request policy (vibe_edge.requests).
The same GenerationRequest goes to every backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vibe_edge.defaults import DEFAULT_LOOP_GUARD, DEFAULT_PRESET, MAX_SAMPLES, UNLIMITED_THINKING
from vibe_edge.errors import InvalidRequest
from vibe_edge.presets import PRESETS, Preset, get_preset
from vibe_edge.requests import Limits, Overrides, resolve_thinking_budget
from vibe_edge.requests import build_request as build_policy_request
from vibe_edge.types import GenerationRequest, SamplingParams

__all__ = ["ChatOptions", "build_request", "check_samples", "history_messages"]

# Saved options (the `options` pref): version 2 reads thinking_budget 0 as no thinking.
_PREFS_VERSION = 2


@dataclass(frozen=True)
class ChatOptions:
    """None in a field means "the preset's value". thinking_budget counts tokens, 0 is no
    thinking and -1 no budget (as everywhere in vibe-edge, and llama.cpp's --reasoning-budget).

    samples: answers drawn per reply (self-consistency); above 1 the reply is the majority
    vote over them (n=samples, vote=True). At most the backend's slots: each sample decodes in
    a slot of its own."""

    preset: str = DEFAULT_PRESET
    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    thinking_budget: int | None = None
    loop_guard: bool = DEFAULT_LOOP_GUARD
    samples: int = 1

    @property
    def preset_obj(self) -> Preset:
        return get_preset(self.preset)

    def effective(self) -> dict[str, Any]:
        """The values a request will use, presets filled in (for the settings screen)."""
        p = self.preset_obj
        budget = resolve_thinking_budget(self.thinking_budget, p.thinking_budget)
        return {
            "system_prompt": self.system_prompt if self.system_prompt else (p.system_prompt or ""),
            "temperature": p.sampling.temperature if self.temperature is None else self.temperature,
            "top_p": p.sampling.top_p if self.top_p is None else self.top_p,
            "max_tokens": p.max_tokens if self.max_tokens is None else self.max_tokens,
            "thinking_budget": budget,
        }

    def validate(self, *, slots: int | None = None) -> None:
        """slots: the backend's (None: unknown, e.g. a remote server not saying; the server
        then refuses too many samples itself)."""
        get_preset(self.preset)
        eff = self.effective()
        SamplingParams(temperature=eff["temperature"], top_p=eff["top_p"]).validate()
        if not isinstance(eff["max_tokens"], int) or eff["max_tokens"] < 1:
            raise InvalidRequest(f"max tokens must be a positive integer, got {eff['max_tokens']!r}",
                                 param="max_tokens")
        if self.thinking_budget is not None and self.thinking_budget < UNLIMITED_THINKING:
            raise InvalidRequest("thinking budget must be a number of tokens (0: no thinking), or -1 "
                                 "for no budget", param="thinking_budget")
        check_samples(self.samples, slots)

    def overrides(self) -> Overrides:
        """The options as the request policy reads them (None: the preset's value)."""
        return Overrides(system_prompt=self.system_prompt or None, temperature=self.temperature,
                         top_p=self.top_p, max_tokens=self.max_tokens,
                         thinking_budget=self.thinking_budget, loop_guard=self.loop_guard)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "version": _PREFS_VERSION}

    @classmethod
    def from_dict(cls, data: Any) -> ChatOptions:
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            if data.get("version", 1) < 2 and data.get("thinking_budget") == 0:
                data = {**data, "thinking_budget": UNLIMITED_THINKING}  # version 1 wrote 0 for "no budget"
            options = cls(**{k: v for k, v in data.items() if k in known})
            options.validate()
        except (TypeError, ValueError, InvalidRequest):
            return cls()
        return options


def check_samples(samples: object, slots: int | None) -> None:
    """Raise InvalidRequest unless `samples` is a whole number from 1 to the slots there are."""
    ceiling = min(slots, MAX_SAMPLES) if slots else MAX_SAMPLES
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= ceiling:
        where = (f"the model runs {slots} slot{'s' if slots != 1 else ''} here; each sample needs "
                 "one (start the chat, or its server, with --slots N for more)" if slots else
                 f"at most {MAX_SAMPLES}")
        raise InvalidRequest(f"samples must be a whole number from 1 to {ceiling} ({where}), got "
                             f"{samples!r}", param="samples")


def history_messages(turns: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """(role, text) turns -> OpenAI messages. Assistant turns carry only their answers: the
    reasoning of earlier replies is not sent back (it would fill the context for nothing)."""
    return [{"role": role, "content": text} for role, text in turns if text or role == "user"]


def build_request(options: ChatOptions, turns: Sequence[tuple[str, str]], *,
                  ctx_per_slot: int | None = None, max_tokens: int | None = None,
                  slots: int | None = None) -> GenerationRequest:
    """The request for the next reply: the conversation so far, the options as overrides of
    their preset. ctx_per_slot: the backend's context, when known; max_tokens: the settings'
    cap on any request; slots: the backend's, when known (samples may not exceed them)."""
    request = build_policy_request(options.preset, messages=history_messages(turns),
                                   overrides=options.overrides(),
                                   limits=Limits(ctx_per_slot=ctx_per_slot, max_tokens=max_tokens))
    # Samples are set beside the policy, as the server sets a body's n and vote: they decide
    # how many answers are drawn, not what any one of them is.
    check_samples(options.samples, slots)
    if options.samples > 1:
        request.n, request.vote = options.samples, True
        request.validate()
    return request


PRESET_NAMES = tuple(PRESETS)
