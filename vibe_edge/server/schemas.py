"""Request bodies of the OpenAI-compatible API, as pydantic models (they also make /openapi.json).

Unknown fields are accepted and ignored (`extra="allow"`): clients send many optional OpenAI
parameters (user, metadata, store, service_tier...) that change nothing here. Parameters that
would change the answer but are not supported (n > 1, logprobs, tools) are refused with a 400 in
translate.py, never silently ignored.

vibe-edge's own request fields (all optional; with the OpenAI SDK pass them in `extra_body`):
preset, thinking_budget, loop_guard, top_k, min_p, repeat_penalty, deadline_s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Body):
    type: Literal["text"]
    text: str


Content = Annotated[str | list[TextPart], Field(description="text, or a list of text parts")]


class SystemMessage(_Body):
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(_Body):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Body):
    role: Literal["assistant"]
    content: Content | None = None  # an earlier turn that only called tools has none
    name: str | None = None


ChatMessage = Annotated[SystemMessage | UserMessage | AssistantMessage, Field(discriminator="role")]
MESSAGE_ROLES = ("system", "developer", "user", "assistant")


class StreamOptions(_Body):
    include_usage: bool = False


class JsonSchemaFormat(_Body):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class _GenerationBody(_Body):
    model: str | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="only 1 is supported")
    logprobs: bool | int | None = Field(default=None, description="not supported: false or absent")
    # vibe-edge extras
    preset: str | None = Field(default=None, description="vibe-edge: math, code or general")
    thinking_budget: int | None = Field(
        default=None, ge=-1,
        description="vibe-edge: reasoning tokens before the think block is closed; 0: no thinking, -1: no budget")
    loop_guard: bool | None = Field(default=None, description="vibe-edge: end looping reasoning")
    top_k: int | None = Field(default=None, ge=0, description="vibe-edge: 0 turns it off")
    min_p: float | None = Field(default=None, ge=0.0, le=1.0, description="vibe-edge")
    repeat_penalty: float | None = Field(default=None, gt=0.0, le=10.0, description="vibe-edge")
    deadline_s: float | None = Field(default=None, gt=0.0,
                                     description="vibe-edge: end the request after this many seconds")


class ChatCompletionRequest(_GenerationBody):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    top_logprobs: int | None = Field(default=None, description="not supported: 0 or absent")
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None


class CompletionRequest(_GenerationBody):
    prompt: str | list[str] = Field(min_length=1, description="a string, or a list holding one string")
    echo: bool | None = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=1, description="only 1 is supported")
    response_format: ResponseFormat | None = None
