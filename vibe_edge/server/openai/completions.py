"""POST /v1/completions: a raw prompt in (no chat template), text out."""

from __future__ import annotations

import time

from vibe_edge.errors import InvalidRequest
from vibe_edge.server.openai.protocol import (
    CompletionChoice,
    CompletionRequest,
    NoticeItem,
    TextCompletion,
    Timings,
    Usage,
    VoteInfo,
    choice_order,
)
from vibe_edge.server.openai.serving import OpenAIServing, Prepared, new_id, refuse_unsupported
from vibe_edge.types import GenerationResult, Notice


class OpenAIServingCompletion(OpenAIServing):
    endpoint = "completions"

    def prepare(self, body: CompletionRequest, *, ctx_per_slot: int) -> Prepared:
        refuse_unsupported(body)
        prompt = body.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidRequest("send one prompt per request (a list of several prompts is not "
                                     "supported; requests run in parallel anyway)", param="prompt")
            prompt = prompt[0]
        if prompt == "":
            raise InvalidRequest("the prompt is empty", param="prompt")
        request = self.build(body, ctx_per_slot=ctx_per_slot, messages=None, prompt=prompt,
                             max_tokens=body.max_tokens, request_id=new_id("cmpl"))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return Prepared(request, bool(body.stream), include_usage,
                        echo_prompt=prompt if body.echo else None)

    def response(self, result: GenerationResult, prepared: Prepared, notices: list[Notice], *,
                 model: str) -> TextCompletion:
        order = choice_order(result, winner_first=True)
        samples = result.samples or [result]
        choices = [CompletionChoice(index=k, text=(prepared.echo_prompt or "") + samples[i].answer,
                                    reasoning_content=samples[i].reasoning or None,
                                    **CompletionChoice.outcome(samples[i]))
                   for k, i in enumerate(order)]
        return TextCompletion(
            id=result.request_id, created=int(time.time()), model=model, choices=choices,
            usage=Usage.of_result(result), timings=Timings.of(result.stats),
            notices=[NoticeItem.of(n) for n in notices], vote=VoteInfo.of(result, order))

    def chunks(self, prepared: Prepared, model: str) -> CompletionChunks:
        return CompletionChunks(prepared.request.request_id, model, prepared.echo_prompt,
                                prepared.request.n)


class CompletionChunks:
    """The streamed text_completion objects of one request (the echoed prompt first)."""

    def __init__(self, request_id: str, model: str, echo_prompt: str | None = None, n: int = 1):
        self.id, self.model, self.created = request_id, model, int(time.time())
        self.echo_prompt = echo_prompt
        self.n = n

    def _chunk(self, choices: list[CompletionChoice], **extra: object) -> TextCompletion:
        return TextCompletion(id=self.id, created=self.created, model=self.model, choices=choices,
                              **extra)

    def opening(self) -> list[TextCompletion]:
        if not self.echo_prompt:
            return []
        return [self.text("answer", self.echo_prompt, index) for index in range(self.n)]

    def text(self, channel: str, text: str, index: int = 0) -> TextCompletion:
        if channel == "reasoning":
            return self._chunk([CompletionChoice(index=index, text="", reasoning_content=text)])
        return self._chunk([CompletionChoice(index=index, text=text)])

    def notice(self, notice: Notice) -> TextCompletion:
        return self._chunk([CompletionChoice(index=notice.sample)], notice=NoticeItem.of(notice))

    def final(self, result: GenerationResult, index: int = 0) -> TextCompletion:
        return self._chunk([CompletionChoice(index=index, **CompletionChoice.outcome(result))],
                           timings=Timings.of(result.stats))

    def usage(self, result: GenerationResult) -> TextCompletion:
        return self._chunk([], usage=Usage.of_result(result))

    def vote(self, result: GenerationResult) -> TextCompletion:
        return self._chunk([], vote=VoteInfo.of(result, choice_order(result, winner_first=False)))
