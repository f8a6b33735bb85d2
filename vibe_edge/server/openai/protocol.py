"""The OpenAI wire format as vibe-edge speaks it: request bodies and response objects, with
vibe-edge's extensions, as pydantic models.

The server reads requests and writes responses with these (they also make /openapi.json), and
the TUI's remote backend reads the server's stream with the same response models, so an
extension is defined once: `reasoning_content` on messages and deltas, and on a finished choice
`finish_detail` (the engine's exact finish reason), `boxed` (the final \\boxed{} answer),
`reasoning_end` (who closed the think block) and `error`; `timings` (the request's figures),
`notices` (non-streamed) and `notice` (one per streamed chunk) on the envelope.

Requests: unknown fields are accepted and ignored (`extra="allow"`): clients send many optional
OpenAI parameters (user, metadata, store, service_tier...) that change nothing here. Parameters
that would change the answer but are not supported (logprobs, tools) are refused with a 400 by
the serving objects, never silently ignored. `n` samples are choices with their `index`;
vibe-edge's own request fields (all optional; with the OpenAI SDK pass them in `extra_body`):
preset, thinking_budget, loop_guard, top_k, min_p, repeat_penalty, deadline_s, vote (a majority
vote over the n choices: the response then carries a `vote` object), speculative (speculative
decoding on or off for this request).

Responses: every field has a default, so the same models read other OpenAI-compatible servers
(llama-server, Ollama); their own extras stay available as pydantic extras.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from vibe_edge.types import FinishReason, GenerationResult, Notice, RequestStats


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
    n: int | None = Field(default=None, ge=1, description="samples of the prompt (at most the server's slots)")
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
    vote: bool | None = Field(default=None, description="vibe-edge: majority vote over the n choices' answers")
    speculative: bool | None = Field(
        default=None, description="vibe-edge: speculative decoding for this request (default: the server's --spec, off)")


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


# -- responses -----------------------------------------------------------------------------------

class _Wire(BaseModel):
    """A response object. Fields named in OMIT_NONE are left out when None (vibe-edge's optional
    extras); OpenAI's own optional fields (logprobs, finish_reason, system_fingerprint) are
    written as null, as OpenAI does."""

    model_config = ConfigDict(extra="allow")
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_unset_extras(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for name in self.OMIT_NONE:
            if name in data and data[name] is None:
                del data[name]
        return data


class NoticeItem(_Wire):
    code: str = ""
    message: str = ""

    @classmethod
    def of(cls, notice: Notice) -> NoticeItem:
        return cls(code=notice.code, message=notice.message)


class Timings(_Wire):
    """vibe-edge's figures for one request (RequestStats: milliseconds, tokens, tokens/s).
    Read from llama-server, its own keys (prompt_n, cache_n, predicted_n,
    predicted_per_second) are extras."""

    queue_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    completion_tokens: int | None = None
    prefill_tps: float | None = None
    decode_tps: float | None = None
    draft_tokens: int | None = None     # speculative decoding: proposed,
    accepted_tokens: int | None = None  # accepted,
    acceptance: float | None = None     # and their ratio (None: nothing drafted)

    @classmethod
    def of(cls, stats: RequestStats) -> Timings:
        return cls(**stats.to_dict())


class PromptTokensDetails(_Wire):
    cached_tokens: int | None = None  # None: a server that does not say


class CompletionTokensDetails(_Wire):
    reasoning_tokens: int | None = None


class Usage(_Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @classmethod
    def of(cls, stats: RequestStats) -> Usage:
        return cls(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
                   total_tokens=stats.prompt_tokens + stats.completion_tokens,
                   prompt_tokens_details=PromptTokensDetails(cached_tokens=stats.cached_tokens),
                   completion_tokens_details=CompletionTokensDetails(reasoning_tokens=stats.reasoning_tokens))

    @classmethod
    def of_result(cls, result: GenerationResult) -> Usage:
        """A request's usage: with n samples, completion tokens summed over them and the prompt
        counted once (it was evaluated once; sample 0 prefilled it)."""
        if not result.samples:
            return cls.of(result.stats)
        lead = result.samples[0].stats
        completion = sum(s.stats.completion_tokens for s in result.samples)
        return cls(prompt_tokens=lead.prompt_tokens, completion_tokens=completion,
                   total_tokens=lead.prompt_tokens + completion,
                   prompt_tokens_details=PromptTokensDetails(cached_tokens=lead.cached_tokens),
                   completion_tokens_details=CompletionTokensDetails(
                       reasoning_tokens=sum(s.stats.reasoning_tokens for s in result.samples)))


def choice_order(result: GenerationResult, *, winner_first: bool) -> list[int]:
    """Sample indices in choice order: by sample, or (a whole voted response) the winner first."""
    order = list(range(len(result.samples or [result])))
    vote = result.vote
    if winner_first and vote is not None and vote.winner is not None:
        first = vote.winner.samples[0]
        order = [first] + [i for i in order if i != first]
    return order


class VoteAnswer(_Wire):
    answer: str = ""
    votes: int = 0
    choices: list[int] = Field(default_factory=list)  # the choice indices that gave this answer
    mean_reasoning_tokens: float = 0.0


class VoteInfo(_Wire):
    """vibe-edge's majority vote over the choices (`vote: true`): answers by votes (the first
    won), each choice's answer (null: it did not vote), and the choices stopped early because
    they could no longer change the winner."""

    winner: str | None = None
    winner_index: int | None = None
    answers: list[VoteAnswer] = Field(default_factory=list)
    choice_answers: list[str | None] = Field(default_factory=list)
    abstained: list[int] = Field(default_factory=list)
    early_stopped: list[int] = Field(default_factory=list)

    @classmethod
    def of(cls, result: GenerationResult, order: list[int]) -> VoteInfo | None:
        vote = result.vote
        if vote is None:
            return None
        index = {sample: k for k, sample in enumerate(order)}
        answers = [VoteAnswer(answer=g.answer, votes=g.votes, choices=sorted(index[s] for s in g.samples),
                              mean_reasoning_tokens=round(g.mean_reasoning_tokens, 1))
                   for g in vote.groups]
        by_choice = [vote.answers[sample] for sample in order]
        return cls(winner=None if vote.winner is None else vote.winner.answer,
                   winner_index=None if vote.winner is None else index[vote.winner.samples[0]],
                   answers=answers, choice_answers=by_choice,
                   abstained=[k for k, a in enumerate(by_choice) if a is None],
                   early_stopped=sorted(index[s] for s in vote.early_stopped))


def openai_finish_reason(reason: FinishReason) -> str:
    """OpenAI clients know "stop" and "length": a request cut short for any other reason
    (timeout, cancellation, an engine error) reads as "length", do not treat it as complete;
    finish_detail says which."""
    return "stop" if reason is FinishReason.STOP else "length"


class _Outcome(_Wire):
    """vibe-edge's fields on a finished choice."""

    OMIT_NONE = frozenset({"finish_detail", "boxed", "reasoning_end", "error", "reasoning_content"})
    finish_detail: str | None = None  # the engine's own finish reason
    boxed: str | None = None          # the last \\boxed{...} of the answer
    reasoning_end: str | None = None  # "model", "budget" or "loop": who closed the think block
    error: str | None = None          # why the engine failed the request

    @staticmethod
    def outcome(result: GenerationResult) -> dict[str, Any]:
        return {"finish_reason": openai_finish_reason(result.finish_reason),
                "finish_detail": result.finish_reason.value, "boxed": result.boxed,
                "reasoning_end": result.reasoning_end.value if result.reasoning_end else None,
                "error": result.error or None}


class ChatMessageOut(_Wire):
    OMIT_NONE = frozenset({"reasoning_content"})
    role: str = "assistant"
    content: str | None = None
    reasoning_content: str | None = None


class ChatChoice(_Outcome):
    index: int = 0
    message: ChatMessageOut = Field(default_factory=ChatMessageOut)
    logprobs: Any = None
    finish_reason: str | None = None


class _Envelope(_Wire):
    OMIT_NONE = frozenset({"usage", "timings", "notice", "notices", "vote"})
    id: str = ""
    object: str = ""
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    notices: list[NoticeItem] | None = None  # a whole response: every notice of the request
    notice: NoticeItem | None = None         # a streamed chunk: the one notice it carries
    vote: VoteInfo | None = None             # `vote: true`: the vote over the choices


class ChatCompletion(_Envelope):
    object: str = "chat.completion"
    choices: list[ChatChoice] = Field(default_factory=list)


class Delta(_Wire):
    """A streamed chat delta. Other servers name the reasoning `reasoning`; vibe-edge writes
    `reasoning_content`, as llama-server and vLLM do."""

    OMIT_NONE = frozenset({"role", "content", "reasoning_content", "reasoning"})
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None

    @property
    def thinking(self) -> str | None:
        return self.reasoning_content or self.reasoning


class ChatChunkChoice(_Outcome):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    logprobs: Any = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Envelope):
    object: str = "chat.completion.chunk"
    choices: list[ChatChunkChoice] = Field(default_factory=list)


class CompletionChoice(_Outcome):
    index: int = 0
    text: str = ""
    logprobs: Any = None
    finish_reason: str | None = None
    reasoning_content: str | None = None


class TextCompletion(_Envelope):
    """A text completion, whole or streamed (OpenAI names both "text_completion")."""

    object: str = "text_completion"
    choices: list[CompletionChoice] = Field(default_factory=list)


class ModelMeta(_Wire):
    name: str = ""
    architecture: str = ""
    n_params: int = 0
    size_bytes: int = 0
    n_ctx_train: int = 0
    slots: int = 0
    ctx_per_slot: int = 0
    thinks: bool = False
    gpu_layers: int = 0


class ModelCard(_Wire):
    OMIT_NONE = frozenset({"meta"})
    id: str = ""
    object: str = "model"
    created: int = 0
    owned_by: str = "vibe-edge"
    meta: ModelMeta | None = None


class ModelList(_Wire):
    object: str = "list"
    data: list[ModelCard] = Field(default_factory=list)
