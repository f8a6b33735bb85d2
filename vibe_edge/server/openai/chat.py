"""POST /v1/chat/completions: messages in, the reasoning apart from the answer out."""

from __future__ import annotations

import time

from vibe_edge.server.openai.protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessageOut,
    Delta,
    NoticeItem,
    Timings,
    Usage,
    VoteInfo,
    choice_order,
)
from vibe_edge.server.openai.serving import OpenAIServing, Prepared, new_id, refuse_unsupported
from vibe_edge.types import GenerationResult, Notice


class OpenAIServingChat(OpenAIServing):
    endpoint = "chat"

    def prepare(self, body: ChatCompletionRequest, *, ctx_per_slot: int) -> Prepared:
        refuse_unsupported(body)
        messages = [{"role": m.role, "content": m.model_dump()["content"]} for m in body.messages]
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        request = self.build(body, ctx_per_slot=ctx_per_slot, messages=messages, prompt=None,
                             max_tokens=max_tokens, request_id=new_id("chatcmpl"))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return Prepared(request, bool(body.stream), include_usage)

    def response(self, result: GenerationResult, prepared: Prepared, notices: list[Notice], *,
                 model: str) -> ChatCompletion:
        order = choice_order(result, winner_first=True)
        samples = result.samples or [result]
        choices = [ChatChoice(index=k, message=ChatMessageOut(content=samples[i].answer,
                                                              reasoning_content=samples[i].reasoning or None),
                              **ChatChoice.outcome(samples[i]))
                   for k, i in enumerate(order)]
        return ChatCompletion(
            id=result.request_id, created=int(time.time()), model=model, choices=choices,
            usage=Usage.of_result(result), timings=Timings.of(result.stats),
            notices=[NoticeItem.of(n) for n in notices], vote=VoteInfo.of(result, order))

    def chunks(self, prepared: Prepared, model: str) -> ChatChunks:
        return ChatChunks(prepared.request.request_id, model, prepared.request.n)


class ChatChunks:
    """The chat.completion.chunk objects of one streamed request."""

    def __init__(self, request_id: str, model: str, n: int = 1):
        self.id, self.model, self.created = request_id, model, int(time.time())
        self.n = n

    def _chunk(self, choices: list[ChatChunkChoice], **extra: object) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                   choices=choices, **extra)

    def opening(self) -> list[ChatCompletionChunk]:
        return [self._chunk([ChatChunkChoice(index=i, delta=Delta(role="assistant", content=""))
                             for i in range(self.n)])]

    def text(self, channel: str, text: str, index: int = 0) -> ChatCompletionChunk:
        delta = Delta(reasoning_content=text) if channel == "reasoning" else Delta(content=text)
        return self._chunk([ChatChunkChoice(index=index, delta=delta)])

    def notice(self, notice: Notice) -> ChatCompletionChunk:
        return self._chunk([ChatChunkChoice(index=notice.sample)], notice=NoticeItem.of(notice))

    def final(self, result: GenerationResult, index: int = 0) -> ChatCompletionChunk:
        return self._chunk([ChatChunkChoice(index=index, **ChatChunkChoice.outcome(result))],
                           timings=Timings.of(result.stats))

    def usage(self, result: GenerationResult) -> ChatCompletionChunk:
        return self._chunk([], usage=Usage.of_result(result))

    def vote(self, result: GenerationResult) -> ChatCompletionChunk:
        return self._chunk([], vote=VoteInfo.of(result, choice_order(result, winner_first=False)))
