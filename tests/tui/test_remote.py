"""Remote mode: the OpenAI-compatible backend, against a scripted SSE server (httpx mock) and
against a real `vibe-edge serve` on a Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from tui_helpers import wait_for

from vibe_edge.types import Finished, FinishReason, GenerationRequest, Notice, TextDelta
from vibe_edge.tui.app import ChatApp
from vibe_edge.tui.backends import OpenAIBackend
from vibe_edge.tui.options import ChatOptions
from vibe_edge.tui.widgets import AssistantMessage, NoticeLine


def _sse(chunks: list[dict]) -> bytes:
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + b"data: [DONE]\n\n"


def _chunk(delta=None, finish=None, **extra) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": choices, **extra}


def _mock_client(chunks: list[dict], seen: list[dict]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": "vibethinker", "object": "model", "created": 0, "owned_by": "me"}]})
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=_sse(chunks), headers={"content-type": "text/event-stream"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def _collect(backend: OpenAIBackend, request: GenerationRequest) -> list:
    stream = await backend.submit(request)
    return [ev async for ev in stream]


async def test_reasoning_content_notices_usage_and_boxed_from_the_stream():
    seen: list[dict] = []
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "Think: 3+4"}),
        _chunk({"reasoning_content": " is 7."}),
        _chunk({}, notice={"code": "thinking_budget", "message": "budget reached"}),
        _chunk({"content": "It is $\\boxed{7}$."}),
        _chunk({}, "stop", timings={"decode_tps": 12.5, "ttft_ms": 80.0, "reasoning_tokens": 5}),
        _chunk(None, usage={"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}),
    ]
    backend = OpenAIBackend(base_url="http://server:8080", http_client=_mock_client(chunks, seen))
    await backend.start()
    assert backend.model_name == "vibethinker"
    from vibe_edge.tui.options import build_request

    request = build_request(ChatOptions(preset="math", thinking_budget=100), [("user", "3+4?")])
    events = await _collect(backend, request)
    text = [(e.channel, e.text) for e in events if isinstance(e, TextDelta)]
    assert text == [("reasoning", "Think: 3+4"), ("reasoning", " is 7."), ("answer", "It is $\\boxed{7}$.")]
    assert [e.code for e in events if isinstance(e, Notice)] == ["thinking_budget"]
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.finish_reason is FinishReason.STOP
    assert result.boxed == "7" and result.reasoning == "Think: 3+4 is 7."
    assert result.stats.prompt_tokens == 20 and result.stats.decode_tps == 12.5
    assert result.stats.reasoning_tokens == 5 and result.stats.answer_tokens == 4
    body = seen[0]
    assert body["model"] == "vibethinker" and body["stream"] is True
    assert body["thinking_budget"] == 100 and body["top_k"] == 0 and body["temperature"] == 1.0
    assert body["messages"][0]["role"] == "system"


async def test_no_budget_is_sent_as_minus_one_so_the_server_default_does_not_apply():
    seen: list[dict] = []
    backend = OpenAIBackend(base_url="http://x", http_client=_mock_client([_chunk({}, "stop")], seen))
    await backend.start()
    from vibe_edge.tui.options import build_request

    await _collect(backend, build_request(ChatOptions(preset="math", thinking_budget=-1), [("user", "q")]))
    await _collect(backend, build_request(ChatOptions(preset="math", thinking_budget=0), [("user", "q")]))
    assert [body["thinking_budget"] for body in seen] == [-1, 0]


async def test_every_turn_of_a_conversation_carries_the_same_session_key():
    # Behind a balancer (docs/DEPLOY.md) the X-Session-Id keeps a conversation on the instance
    # that holds its history in the prefix cache.
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": "m", "object": "model", "created": 0, "owned_by": "me"}]})
        keys.append(request.headers.get("X-Session-Id"))
        return httpx.Response(200, content=_sse([_chunk({}, "stop")]),
                              headers={"content-type": "text/event-stream"})

    from vibe_edge.tui.options import build_request

    def turns(opening: str) -> list[list[tuple[str, str]]]:
        history = [("user", opening)]
        out = [list(history)]
        for i in range(2):
            history += [("assistant", f"answer {i}"), ("user", f"follow-up {i}")]
            out.append(list(history))
        return out

    backend = OpenAIBackend(base_url="http://x", http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(handler)))
    await backend.start()
    options = ChatOptions(preset="general")
    for messages in turns("What is a lighthouse?") + turns("How is bread made?"):
        await _collect(backend, build_request(options, messages))
    first, second = keys[:3], keys[3:]
    assert all(first) and len(set(first)) == 1 and len(set(second)) == 1
    assert first[0] != second[0]
    # Another client opening with the same question is another conversation.
    other = OpenAIBackend(base_url="http://x", http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(handler)))
    await other.start()
    await _collect(other, build_request(options, turns("What is a lighthouse?")[0]))
    assert keys[-1] != first[0]


async def test_inline_think_tags_are_split_and_cjk_noticed_client_side():
    chunks = [_chunk({"content": "<th"}), _chunk({"content": "ink>hmm</thi"}),
              _chunk({"content": "nk>\n\nAnswer"}), _chunk({}, "length")]
    backend = OpenAIBackend(base_url="http://x", model="m", http_client=_mock_client(chunks, []))
    await backend.start()
    request = GenerationRequest(messages=[{"role": "user", "content": "二加二等于几呢"}])
    events = await _collect(backend, request)
    assert [e.code for e in events if isinstance(e, Notice)] == ["cjk_prompt"]
    result = events[-1].result
    assert (result.reasoning, result.answer) == ("hmm", "Answer")
    assert result.finish_reason is FinishReason.LENGTH


async def test_unreachable_server_is_a_clear_error(tmp_path):
    from vibe_edge.tui.backends import BackendError

    backend = OpenAIBackend(socket=tmp_path / "nobody.sock")
    with pytest.raises(BackendError, match="cannot reach the server"):
        await backend.start()


@contextlib.contextmanager
def _serve_demo(slots: int):
    """A real `vibe-edge serve --socket` on the demo model (its public entry point: the CLI)."""
    try:
        import vibe_edge.server  # noqa: F401
        from vibe_edge.registry import demo_model_path
    except ImportError:
        pytest.skip("vibe_edge.server is not available yet")
    if demo_model_path() is None:
        pytest.skip("the demo model is not installed")
    folder = tempfile.mkdtemp(prefix="ve-tui-", dir="/tmp")  # short: socket paths have a limit
    path = Path(folder) / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vibe_edge", "serve", "--model", "demo", "--socket", str(path),
         "--slots", str(slots), "--ctx", "2048", "--preset", "general"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        deadline = time.monotonic() + 90
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(path)))
        while True:
            if proc.poll() is not None:
                pytest.fail("vibe-edge serve exited: " + proc.stderr.read().decode()[-2000:])
            try:
                if path.exists() and client.get("http://localhost/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("vibe-edge serve did not become healthy in 90 s")
            time.sleep(0.2)
        client.close()
        yield path
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def served_socket():
    with _serve_demo(slots=1) as path:
        yield path


@pytest.fixture
def served_two_slots():
    with _serve_demo(slots=2) as path:
        yield path


async def test_app_against_a_real_server_on_a_unix_socket(served_socket, history_path, tmp_path):
    backend = OpenAIBackend(socket=served_socket)
    options = ChatOptions(preset="general", temperature=0.0, max_tokens=24)
    app = ChatApp(backend, history=history_path, options=options, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app._backend_ready.is_set(), timeout=30)
        assert app._backend_error is None
        app.query_one("#prompt").text = "请用中文说你好"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown, timeout=60)
        view = app.query_one(AssistantMessage)
        assert view.answer_text.strip()
        assert [n.code for n in app.query(NoticeLine)] == ["cjk_prompt"]  # sent by the server
        [_, msg] = app.store.messages(app.conversation_id)
        assert msg.status in ("complete", "length") and msg.content == view.answer_text
        assert msg.stats["answer_tokens"] > 0
        # Esc stops a long remote reply at once and the server frees its slot.
        app.options = ChatOptions(preset="general", temperature=0.0, max_tokens=1500)
        app.query_one("#prompt").text = "Write a very long story about a dragon."
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and not app.reply.done
                       and app.reply.answer_tokens >= 3, timeout=60)
        await pilot.press("escape")
        assert app.store.messages(app.conversation_id)[-1].status == "stopped"
        await asyncio.sleep(0.2)



def _strict_client(reply_400: dict, seen: list[dict], *, refuse_always: bool = False) -> httpx.AsyncClient:
    """A server that answers 400 to the first chat request (OpenAI-style body), then streams."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [
                {"id": "m", "object": "model", "created": 0, "owned_by": "me"}]})
        body = json.loads(request.content)
        seen.append(body)
        if refuse_always or (len(seen) == 1):
            return httpx.Response(400, json={"error": reply_400})
        return httpx.Response(200, content=_sse([_chunk({"content": "ok"}), _chunk({}, "stop")]),
                              headers={"content-type": "text/event-stream"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_server_that_refuses_the_extra_fields_gets_a_plain_retry_and_the_user_is_told():
    seen: list[dict] = []
    refusal = {"message": "Unrecognized request argument supplied: top_k",
               "type": "invalid_request_error", "param": None, "code": None}
    backend = OpenAIBackend(base_url="http://strict", model="m", http_client=_strict_client(refusal, seen))
    await backend.start()
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}])
    first = await _collect(backend, request)
    second = await _collect(backend, GenerationRequest(messages=[{"role": "user", "content": "again"}]))
    assert "top_k" in seen[0] and "top_k" not in seen[1] and "thinking_budget" not in seen[2]
    notes = [e for e in first + second if isinstance(e, Notice)]
    assert [n.code for n in notes] == ["extras_dropped"]  # told once, not every turn
    assert "thinking" in notes[0].message
    assert first[-1].result.answer == "ok" and first[-1].result.finish_reason is FinishReason.STOP


async def test_any_other_400_is_that_requests_error_and_keeps_the_extras():
    seen: list[dict] = []
    too_long = {"message": "This model's maximum context length is 4096 tokens. However, you "
                           "requested 9000 tokens.", "type": "invalid_request_error",
                "param": "messages", "code": "context_length_exceeded"}
    backend = OpenAIBackend(base_url="http://strict", model="m", http_client=_strict_client(too_long, seen))
    await backend.start()
    events = await _collect(backend, GenerationRequest(messages=[{"role": "user", "content": "x"}]))
    result = events[-1].result
    assert result.finish_reason is FinishReason.ERROR and "maximum context length" in result.error
    assert len(seen) == 1  # not retried
    assert not [e for e in events if isinstance(e, Notice) and e.code == "extras_dropped"]
    await _collect(backend, GenerationRequest(messages=[{"role": "user", "content": "y"}]))
    assert "thinking_budget" in seen[1] and "top_k" in seen[1]  # the budget still goes out


def test_chat_never_sends_openai_api_key_to_another_server(monkeypatch):
    from vibe_edge.cli.chat import _backend
    from vibe_edge.settings import load_settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-real-openai-key")
    backend = _backend(load_settings(), None, "http://127.0.0.1:9", None, None)
    assert backend.api_key != "sk-users-real-openai-key"
    explicit = _backend(load_settings(), None, "http://127.0.0.1:9", None, "vibe-key")
    assert explicit.api_key == "vibe-key"


# -- samples: n choices and vibe-edge's vote -----------------------------------------------------------

def _served_vote_stream() -> list[dict]:
    """What `vibe-edge serve` streams for n=3 with vote, written by the server's own chunk writer
    from engine results: sample 1 wins with sample 2, sample 0 answers otherwise, and sample 0's
    notice comes on its choice."""
    from vibe_edge.server.openai.chat import ChatChunks
    from vibe_edge.types import GenerationResult, RequestStats, VoteGroup, VoteOutcome

    def result(i, answer, boxed):
        return GenerationResult(request_id="r", text=answer, reasoning=f"think {i}", answer=answer,
                                finish_reason=FinishReason.STOP, boxed=boxed, sample=i,
                                stats=RequestStats(prompt_tokens=11, reasoning_tokens=4 + i,
                                                   answer_tokens=3, decode_tps=30.0 + i))

    from vibe_edge.types import Notice as EngineNotice

    writer = ChatChunks("r", "m", 3)
    samples = [result(0, "It is \\boxed{41}.", "41"), result(1, "It is \\boxed{42}.", "42"),
               result(2, "So \\boxed{42}.", "42")]
    vote = VoteOutcome([VoteGroup("42", [1, 2], 5.5), VoteGroup("41", [0], 4.0)], ["41", "42", "42"])
    top = GenerationResult(**{**samples[1].__dict__, "samples": samples, "vote": vote})
    chunks = [c.model_dump() for c in writer.opening()]
    for s in samples:
        chunks.append(writer.text("reasoning", s.reasoning, s.sample).model_dump())
    chunks.append(writer.notice(EngineNotice("r", "thinking_budget", "budget reached", sample=0)).model_dump())
    for s in samples:
        chunks.append(writer.text("answer", s.answer, s.sample).model_dump())
    for s in (samples[2], samples[0], samples[1]):  # samples end in any order
        chunks.append(writer.final(s, s.sample).model_dump())
    chunks.append(writer.vote(top).model_dump())
    chunks.append(writer.usage(top).model_dump())
    return chunks


async def test_n_streamed_choices_and_the_vote_become_the_engines_sample_events():
    from vibe_edge.types import SampleFinished, Started

    seen: list[dict] = []
    backend = OpenAIBackend(base_url="http://server", model="m",
                            http_client=_mock_client(_served_vote_stream(), seen))
    await backend.start()
    from vibe_edge.tui.options import build_request

    request = build_request(ChatOptions(preset="math", samples=3), [("user", "q")])
    events = await _collect(backend, request)
    assert seen[0]["n"] == 3 and seen[0]["vote"] is True
    assert [e.sample for e in events if isinstance(e, Started)] == [0, 1, 2]
    texts = {(e.sample, e.channel): e.text for e in events if isinstance(e, TextDelta)}
    assert texts[(1, "reasoning")] == "think 1" and texts[(2, "answer")] == "So \\boxed{42}."
    assert [(e.sample, e.code) for e in events if isinstance(e, Notice)] == [(0, "thinking_budget")]
    ended = [e for e in events if isinstance(e, SampleFinished)]
    assert [e.sample for e in ended] == [2, 0, 1]
    assert ended[0].result.answer == "So \\boxed{42}." and ended[0].result.stats.reasoning_tokens == 6
    final = events[-1]
    assert isinstance(final, Finished) and len([e for e in events if isinstance(e, Finished)]) == 1
    result = final.result
    assert [s.sample for s in result.samples] == [0, 1, 2]
    assert result.vote.tally() == {"42": 2, "41": 1} and result.vote.answers == ["41", "42", "42"]
    assert result.vote.winner.samples == [1, 2]
    # The top-level fields are the winner's, as the engine gives them.
    assert (result.answer, result.reasoning, result.boxed) == ("It is \\boxed{42}.", "think 1", "42")
    assert result.samples[0].stats.prompt_tokens == 11 and result.samples[0].boxed == "41"


async def test_the_app_shows_a_remote_vote_like_a_local_one(history_path, tmp_path):
    backend = OpenAIBackend(base_url="http://server", model="m",
                            http_client=_mock_client(_served_vote_stream(), []))
    app = ChatApp(backend, history=history_path, options=ChatOptions(preset="math", samples=3),
                  export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app._backend_ready.is_set())
        app.query_one("#prompt").text = "q"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown)
        view = app.query_one(AssistantMessage)
        assert view.tally.text == "Vote: 42 ×2 · 41 ×1 · 0 abstained · 0 stopped early"
        assert view.boxed.boxed == "42" and view.answer_text == "It is \\boxed{42}."
        titles = [b.title for b in view.sample_blocks]
        assert titles == ["#1 · done · 7 tokens · 41", "#2 · done · 8 tokens · 42 ✓",
                          "#3 · done · 9 tokens · 42 ✓"]
        [_, msg] = app.store.messages(app.conversation_id)
        assert msg.content == "It is \\boxed{42}." and msg.samples["vote"]["winner_samples"] == [1, 2]


async def test_two_samples_against_a_real_server(served_two_slots, history_path, tmp_path):
    backend = OpenAIBackend(socket=served_two_slots)
    options = ChatOptions(preset="general", temperature=0.9, max_tokens=16, samples=2)
    app = ChatApp(backend, history=history_path, options=options, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app._backend_ready.is_set(), timeout=30)
        assert app._backend_error is None and backend.slots == 2  # from the server's model card
        app.query_one("#prompt").text = "Name a color."
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown, timeout=90)
        view = app.query_one(AssistantMessage)
        assert len(view.sample_blocks) == 2 and all(b.answer_text.strip() for b in view.sample_blocks)
        assert view.tally is not None and view.tally.text.startswith("Vote: ")
        [_, msg] = app.store.messages(app.conversation_id)
        assert msg.status in ("complete", "length") and msg.samples["vote"] is not None
        assert [s["answer"] for s in msg.samples["samples"]] == [b.answer_text for b in view.sample_blocks]
        assert all(s["answer_tokens"] > 0 and s["state"] in ("done", "cut off") for s in msg.samples["samples"])
        # More samples than the server has slots: a clear error, asked of nobody.
        app.options = ChatOptions(preset="general", max_tokens=16, samples=3)
        app.query_one("#prompt").text = "Again."
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.reply is not None and app.reply.shown
                       and app.reply.message_id != msg.id, timeout=30)
        last = app.store.messages(app.conversation_id)[-1]
        assert last.status == "error" and "the model runs 2 slots here" in last.error
