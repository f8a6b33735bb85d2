"""The one request policy: precedence, the thinking budget rule, and the three surfaces (the HTTP
API, `vibe-edge run`, the chat) building the same request from the same preset and overrides."""

from __future__ import annotations

import pytest

from vibe_edge.cli.run import run_request
from vibe_edge.errors import InvalidRequest
from vibe_edge.presets import get_preset
from vibe_edge.requests import Limits, Overrides, build_request, resolve_thinking_budget
from vibe_edge.server import ModelHost, ServerConfig
from vibe_edge.server.metrics import Metrics
from vibe_edge.server.openai import OpenAIServingChat
from vibe_edge.server.openai.protocol import ChatCompletionRequest
from vibe_edge.settings import Settings
from vibe_edge.tui.options import ChatOptions
from vibe_edge.tui.options import build_request as chat_request
from vibe_edge.types import thinking_budget_ceiling

QUESTION = "What is 17 * 23?"
CTX = 16384


def _same(*requests):
    first = requests[0]
    for other in requests[1:]:
        assert other.messages == first.messages
        assert other.sampling == first.sampling
        assert (other.max_tokens, tuple(other.stop), other.reasoning, other.deadline_s) == \
            (first.max_tokens, tuple(first.stop), first.reasoning, first.deadline_s)


def _three_surfaces(preset: str, *, system: str | None = None, **values):
    """The same preset and overrides, given the way each surface takes them."""
    messages = [{"role": "user", "content": QUESTION}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    body = ChatCompletionRequest(messages=messages, preset=preset, **values)
    host = ModelHost()
    serving = OpenAIServingChat(host, ServerConfig(), Metrics(host.status, lambda: host.ready))
    server = serving.prepare(body, ctx_per_slot=CTX).request
    run = run_request(QUESTION, Settings(preset=preset), Overrides(system_prompt=system, **values),
                      ctx_per_slot=CTX)
    chat = chat_request(ChatOptions(preset=preset, system_prompt=system, **values),
                        [("user", QUESTION)], ctx_per_slot=CTX)
    return server, run, chat


def test_the_three_surfaces_build_the_same_request():
    server, run, chat = _three_surfaces("math", temperature=0.7, top_p=0.9, max_tokens=8000)
    _same(server, run, chat)
    # The drift this replaced: the API shrank the math budget to 6000 for 8000 tokens while
    # `run` and the chat let the engine clamp it to 6976; one rule now, for every surface.
    assert server.reasoning.thinking_budget == thinking_budget_ceiling(8000) == 6976
    assert server.sampling.temperature == 0.7 and server.sampling.top_p == 0.9
    assert server.messages[0]["content"] == get_preset("math").system_prompt


def test_the_three_surfaces_agree_on_a_system_prompt_and_a_budget():
    server, run, chat = _three_surfaces("code", system="Answer in one line.", thinking_budget=300)
    _same(server, run, chat)
    assert [m["role"] for m in server.messages] == ["system", "user"]
    assert server.messages[0]["content"] == "Answer in one line."
    assert server.reasoning.thinking_budget == 300


def test_precedence_preset_then_surface_defaults_then_overrides():
    math = get_preset("math")
    plain = build_request("math", messages=[{"role": "user", "content": "q"}])
    assert plain.sampling == math.sampling and plain.max_tokens == math.max_tokens
    surface = Overrides(thinking_budget=100, loop_guard=False, temperature=0.2)
    request = build_request("math", messages=[{"role": "user", "content": "q"}], defaults=surface,
                            overrides=Overrides(temperature=0.5))
    assert request.sampling.temperature == 0.5  # the user's
    assert request.reasoning.thinking_budget == 100 and request.reasoning.loop_guard is False


@pytest.mark.parametrize("asked, limit, ctx, expected", [
    (None, 40960, 4096, 3072),    # the preset's 32768 shrinks to what a 4096-token slot allows
    (None, 100, None, 75),        # a small limit keeps a quarter for the answer
    (500, 2000, None, 500),       # fits: unchanged
    (5000, 2000, None, 1500),     # asked for more than the limit leaves room for
    (0, 2000, None, 0),           # no thinking stays no thinking
    (-1, 2000, None, None),       # no budget at all
])
def test_the_thinking_budget_always_leaves_room_to_answer(asked, limit, ctx, expected):
    request = build_request("math", messages=[{"role": "user", "content": "q"}],
                            overrides=Overrides(thinking_budget=asked, max_tokens=limit),
                            limits=Limits(ctx_per_slot=ctx))
    assert request.reasoning.thinking_budget == expected


def test_top_p_zero_is_greedy_and_seeds_wrap_to_32_bits():
    request = build_request("general", prompt="x", overrides=Overrides(top_p=0.0, seed=-1))
    assert (request.sampling.temperature, request.sampling.top_p) == (0.0, 1.0)
    assert request.sampling.seed == 2**32 - 1


def test_deadlines_are_capped_by_the_surface():
    request = build_request("general", prompt="x", overrides=Overrides(deadline_s=90),
                            limits=Limits(max_deadline_s=30))
    assert request.deadline_s == 30


def test_bad_values_name_their_parameter():
    with pytest.raises(InvalidRequest) as info:
        build_request("general", prompt="x", overrides=Overrides(stop=["s"] * 17))
    assert info.value.param == "stop"
    with pytest.raises(InvalidRequest) as info:
        build_request("general", messages=[{"role": "user", "content": "bad \ud800"}])
    assert info.value.param == "messages"
    with pytest.raises(InvalidRequest) as info:
        build_request("general", prompt="x", overrides=Overrides(temperature=9.0))
    assert info.value.param == "temperature"
    with pytest.raises(InvalidRequest) as info:
        build_request("nope", prompt="x")
    assert info.value.param == "preset"


def test_thinking_budget_values_read_as_llama_cpp_reads_them():
    assert resolve_thinking_budget(None, 6144) == 6144  # unset: the preset's
    assert resolve_thinking_budget(500, 6144) == 500
    assert resolve_thinking_budget(0, 6144) == 0  # no thinking
    assert resolve_thinking_budget(-1, 6144) is None  # no budget


def test_a_surface_cap_on_tokens_wins_over_what_a_request_asks():
    request = build_request("math", prompt="x", overrides=Overrides(max_tokens=5000),
                            limits=Limits(max_tokens=64))
    assert request.max_tokens == 64 and request.reasoning.thinking_budget == thinking_budget_ceiling(64)


def test_the_eval_builds_its_requests_by_the_same_policy():
    from vibe_edge.eval.datasets import Problem, Task
    from vibe_edge.eval.prompts import DEFAULT_DEADLINE_S, RequestPlan, request_for, sample_seed

    task = Task(name="t", kind="math", default_preset="math", problems=())
    plan = RequestPlan(preset=get_preset("math"), max_tokens=8000, temperature=0.7, seed=3)
    request, _ = request_for(plan, task, Problem(id="p1", problem=QUESTION), sample=2,
                             thinking_budget=None, ctx_per_slot=CTX)
    run = run_request(QUESTION, Settings(preset="math"),
                      Overrides(temperature=0.7, max_tokens=8000, seed=sample_seed(3, "p1", 2),
                                deadline_s=DEFAULT_DEADLINE_S), ctx_per_slot=CTX)
    _same(request, run)
    assert request.reasoning.thinking_budget == 6976
