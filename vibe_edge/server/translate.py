"""OpenAI request -> GenerationRequest, and engine events/results -> OpenAI response objects.

Pure functions (no I/O), so the mapping is easy to test and to read in one place.

Finish reasons. OpenAI clients know "stop" and "length"; the engine also ends requests for a
timeout, a cancellation (shutdown) or an engine error. Those become finish_reason "length"
(the output is cut short: do not treat it as complete), and the choice's extra field
`finish_detail` carries the engine's exact reason ("stop", "length", "timeout", "cancelled",
"error"); an engine error also sets `error` on the choice. A request that fails before
producing any output gets an HTTP error (or, once a stream has started, an SSE error event).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from vibe_edge.chat.presets import Preset, apply_preset, get_preset, resolve_thinking_budget
from vibe_edge.engine import (
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Notice,
    ReasoningOptions,
    RequestStats,
    SamplingParams,
)
from vibe_edge.engine.grammar import json_object_grammar, json_schema_grammar
from vibe_edge.errors import InvalidRequest
from vibe_edge.server.config import ServerConfig
from vibe_edge.server.schemas import ChatCompletionRequest, CompletionRequest, ResponseFormat

MAX_STOP_STRINGS = 16
MAX_TOKEN_ID_DIGITS = 10  # 2**31 - 1 has ten digits
# When a thinking budget comes from a preset or the server default (not from the request) and
# would not leave room to answer within the request's token limit, it shrinks to this fraction.
BUDGET_FRACTION_OF_LIMIT = 0.75


@dataclass
class Prepared:
    """A translated request, with what the response needs to echo back."""

    request: GenerationRequest
    stream: bool
    include_usage: bool
    echo_prompt: str | None = None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _preset_for(body: ChatCompletionRequest | CompletionRequest, config: ServerConfig) -> tuple[Preset, bool]:
    if body.preset is not None:
        return get_preset(body.preset), True
    return get_preset(config.default_preset), False


def _stop_list(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else list(stop)
    stops = [s for s in stops if s != ""]
    if len(stops) > MAX_STOP_STRINGS:
        raise InvalidRequest(f"stop takes at most {MAX_STOP_STRINGS} strings, got {len(stops)}",
                             param="stop")
    return tuple(stops)


def _logit_bias(bias: dict[str, float] | None) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, value in (bias or {}).items():
        text = key.strip()
        # Token ids are below 2**31; a longer digit string is refused before int() (which
        # rejects 4,300+ digits with a ValueError, and is slow on long ones anyway).
        if not (text.isascii() and text.isdigit()) or len(text) > MAX_TOKEN_ID_DIGITS:
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise InvalidRequest(f"logit_bias keys must be token ids (integers >= 0), got {shown!r}",
                                 param="logit_bias")
        token = int(text)
        if not -100.0 <= value <= 100.0:
            raise InvalidRequest(f"logit_bias values must be in [-100, 100], got {value!r}",
                                 param="logit_bias")
        out[token] = float(value)
    return out


def _grammar(fmt: ResponseFormat | None) -> str | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_object_grammar()
    schema = fmt.json_schema.schema_ if fmt.json_schema is not None else None
    if schema is None:
        raise InvalidRequest("response_format json_schema needs json_schema.schema (a JSON Schema "
                             "object)", param="response_format")
    return json_schema_grammar(schema)


def _refuse_unsupported(body: ChatCompletionRequest | CompletionRequest) -> None:
    if body.n not in (None, 1):
        raise InvalidRequest("n > 1 is not supported: send separate requests (they run in "
                             "parallel on the engine's slots)", param="n")
    if (body.model_extra or {}).get("grammar") is not None:
        # llama-server and llama-cpp-python take raw GBNF here; this server does not (a grammar
        # is code for llama.cpp's parser), and ignoring it would silently change the answer.
        raise InvalidRequest("a raw grammar is not accepted; ask for JSON with response_format "
                             '{"type": "json_schema", "json_schema": {"schema": {...}}}',
                             param="grammar")
    if body.logprobs not in (None, False, 0):
        raise InvalidRequest("logprobs are not supported by this server", param="logprobs")
    if isinstance(body, ChatCompletionRequest):
        if body.top_logprobs not in (None, 0):
            raise InvalidRequest("top_logprobs is not supported by this server", param="top_logprobs")
        if body.tools or body.functions:
            raise InvalidRequest("tool and function calling are not supported by this model",
                                 param="tools" if body.tools else "functions")
    else:
        if body.best_of not in (None, 1):
            raise InvalidRequest("best_of > 1 is not supported", param="best_of")
        if body.suffix:
            raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")


def _check_text(value: Any, param: str) -> None:
    """Lone surrogates survive JSON decoding but cannot be tokenized: a client mistake."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{param} holds text that is not valid Unicode (a lone "
                                 "surrogate escape)", param=param) from None
    elif isinstance(value, dict):
        for item in value.values():
            _check_text(item, param)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, param)


def _common(body: ChatCompletionRequest | CompletionRequest, config: ServerConfig, *,
            ctx_per_slot: int, messages: list[dict[str, Any]] | None, prompt: str | None,
            max_tokens: int | None, request_id: str) -> GenerationRequest:
    _refuse_unsupported(body)
    preset, named = _preset_for(body, config)
    sampling = preset.sampling
    temperature = body.temperature if body.temperature is not None else sampling.temperature
    top_p = body.top_p if body.top_p is not None else sampling.top_p
    if top_p == 0.0:  # OpenAI accepts 0: only the most likely token survives, i.e. greedy
        temperature, top_p = 0.0, 1.0
    seed = None if body.seed is None else body.seed % (2**32)
    params = SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=body.top_k if body.top_k is not None else sampling.top_k,
        min_p=body.min_p if body.min_p is not None else sampling.min_p,
        repeat_penalty=body.repeat_penalty if body.repeat_penalty is not None else sampling.repeat_penalty,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        seed=seed,
        logit_bias=_logit_bias(body.logit_bias),
        grammar=_grammar(body.response_format),
    )
    limit = max_tokens if max_tokens is not None else preset.max_tokens
    effective = min(limit, ctx_per_slot)
    if body.thinking_budget is not None:
        budget = resolve_thinking_budget(body.thinking_budget, None)
    else:
        budget = resolve_thinking_budget(config.thinking_budget, preset.thinking_budget)
        if budget and budget >= effective:  # 0 (no thinking) stays 0
            budget = max(1, int(effective * BUDGET_FRACTION_OF_LIMIT))
    deadline = body.deadline_s
    if config.request_timeout_s is not None and deadline is not None:
        deadline = min(deadline, config.request_timeout_s)
    if messages is not None and (named or config.apply_preset_prompts):
        messages = apply_preset(preset, messages)
    request = GenerationRequest(
        prompt=prompt,
        messages=messages,
        sampling=params,
        max_tokens=limit,
        stop=_stop_list(body.stop),
        reasoning=ReasoningOptions(
            thinking_budget=budget,
            loop_guard=body.loop_guard if body.loop_guard is not None else config.loop_guard,
        ),
        deadline_s=deadline,
        request_id=request_id,
    )
    return request


def prepare_chat(body: ChatCompletionRequest, config: ServerConfig, *, ctx_per_slot: int) -> Prepared:
    messages = [{"role": m.role, "content": m.model_dump()["content"]} for m in body.messages]
    _check_text(messages, "messages")
    _check_text(body.stop, "stop")
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    request = _common(body, config, ctx_per_slot=ctx_per_slot, messages=messages, prompt=None,
                      max_tokens=max_tokens, request_id=new_id("chatcmpl"))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return Prepared(request, bool(body.stream), include_usage)


def prepare_completion(body: CompletionRequest, config: ServerConfig, *, ctx_per_slot: int) -> Prepared:
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidRequest("send one prompt per request (a list of several prompts is not "
                                 "supported; requests run in parallel anyway)", param="prompt")
        prompt = prompt[0]
    if prompt == "":
        raise InvalidRequest("the prompt is empty", param="prompt")
    _check_text(prompt, "prompt")
    _check_text(body.stop, "stop")
    request = _common(body, config, ctx_per_slot=ctx_per_slot, messages=None, prompt=prompt,
                      max_tokens=body.max_tokens, request_id=new_id("cmpl"))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return Prepared(request, bool(body.stream), include_usage, echo_prompt=prompt if body.echo else None)


# -- responses ----------------------------------------------------------------------------------

def finish_reason(reason: FinishReason) -> str:
    return "stop" if reason is FinishReason.STOP else "length"


def usage(stats: RequestStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": stats.reasoning_tokens},
    }


def notice_dict(notice: Notice) -> dict[str, str]:
    return {"code": notice.code, "message": notice.message}


def choice_extras(result: GenerationResult) -> dict[str, Any]:
    extras: dict[str, Any] = {"finish_detail": result.finish_reason.value}
    if result.boxed is not None:
        extras["boxed"] = result.boxed
    if result.reasoning_end is not None:
        extras["reasoning_end"] = result.reasoning_end.value
    if result.error:
        extras["error"] = result.error
    return extras


def chat_completion(result: GenerationResult, *, model: str, created: int,
                    notices: list[Notice]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.answer}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": finish_reason(result.finish_reason), **choice_extras(result)}
    return _response("chat.completion", choice, result, model=model, created=created, notices=notices)


def _response(kind: str, choice: dict[str, Any], result: GenerationResult, *, model: str,
              created: int, notices: list[Notice]) -> dict[str, Any]:
    """The envelope both endpoints share: one choice, usage, and vibe-edge's extras."""
    return {
        "id": result.request_id,
        "object": kind,
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage(result.stats),
        "timings": result.stats.to_dict(),
        "notices": [notice_dict(n) for n in notices],
    }


def text_completion(result: GenerationResult, *, model: str, created: int, notices: list[Notice],
                    echo_prompt: str | None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "text": (echo_prompt or "") + result.answer,
                              "logprobs": None,
                              "finish_reason": finish_reason(result.finish_reason),
                              **choice_extras(result)}
    if result.reasoning:
        choice["reasoning_content"] = result.reasoning
    return _response("text_completion", choice, result, model=model, created=created, notices=notices)


class ChunkMaker:
    """Builds the streamed objects of one request (chat.completion.chunk or text_completion)."""

    def __init__(self, request_id: str, model: str, *, chat: bool):
        self.id = request_id
        self.model = model
        self.chat = chat
        self.created = int(time.time())

    def _envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "system_fingerprint": None,
                "choices": choices, **extra}

    def _choice(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        if self.chat:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, **extra}
        choice = {"index": 0, "text": delta.get("content", ""), "logprobs": None,
                  "finish_reason": finish, **extra}
        if "reasoning_content" in delta:
            choice["reasoning_content"] = delta["reasoning_content"]
        return choice

    def role(self) -> dict[str, Any]:
        return self._envelope([self._choice({"role": "assistant", "content": ""})])

    def text(self, channel: str, text: str) -> dict[str, Any]:
        key = "reasoning_content" if channel == "reasoning" else "content"
        return self._envelope([self._choice({key: text})])

    def notice(self, notice: Notice) -> dict[str, Any]:
        return self._envelope([self._choice({})], notice=notice_dict(notice))

    def final(self, result: GenerationResult) -> dict[str, Any]:
        return self._envelope([self._choice({}, finish_reason(result.finish_reason),
                                            **choice_extras(result))],
                              timings=result.stats.to_dict())

    def usage(self, result: GenerationResult) -> dict[str, Any]:
        return self._envelope([], usage=usage(result.stats))
