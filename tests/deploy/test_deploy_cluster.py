"""The deployment for real: three `vibe-edge serve` processes on the demo model, on loopback
ports, behind a real nginx running the configuration `vibe-edge deploy nginx` writes.

The tests share one cluster and run in order; each leaves every instance running again.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import openai
import pytest
from deploy_helpers import require_tool

from vibe_edge.deploy.local import LocalCluster
from vibe_edge.deploy.routing import INSTANCE_HEADER, SESSION_HEADER

pytestmark = pytest.mark.slow

KEY = "cluster-test-key"
SLOTS = 10         # one per conversation at most, so a cache check never depends on eviction
GRACE_S = 20
# No request here takes more than seconds on an idle machine; past this it hangs. Generous:
# the machine's two cores are shared with other work.
CLIENT_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, demo_model):
    require_tool("nginx")
    workdir = tmp_path_factory.mktemp("cluster")
    key_file = workdir / "keys"
    key_file.write_text(KEY + "\n")
    home = workdir / "home"
    c = LocalCluster(
        workdir, instances=3,
        serve_args=["--model", "demo", "--alias", "demo", "--slots", str(SLOTS), "--ctx", "1024",
                    "--threads", "1", "--grace", str(GRACE_S), "--api-key-file", str(key_file),
                    "--preset", "general"],
        # A short fail_timeout so a restarted instance is tried again within the test's patience.
        nginx_options={"fail_timeout_s": 2},
        env={"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
             "VIBE_EDGE_MODELS_DIR": str(home / "models"), "HF_HUB_OFFLINE": "1"},
    )
    with c:
        yield c


@pytest.fixture
def http(cluster):
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with httpx.Client(base_url=cluster.url, timeout=CLIENT_TIMEOUT_S, limits=limits,
                      headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def _chat(content: str, max_tokens: int = 8, **extra) -> dict:
    return {"model": "demo", "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens, "temperature": 0, **extra}


@dataclass
class StreamOutcome:
    status: int
    instance: str | None
    chunks: int = 0
    done: bool = False
    finish_reason: str | None = None
    error: str | None = None
    seconds: float = 0.0


def _stream(http: httpx.Client, body: dict, headers: dict | None = None,
            started: threading.Event | None = None) -> StreamOutcome:
    """One streaming chat through nginx, read to its end or its error."""
    t0 = time.monotonic()
    outcome = StreamOutcome(0, None)
    try:
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True},
                         headers=headers or {}) as response:
            outcome.status = response.status_code
            outcome.instance = response.headers.get(INSTANCE_HEADER)
            if response.status_code != 200:
                response.read()
                return outcome
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    outcome.done = True
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    outcome.error = str(chunk["error"])
                    continue
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        outcome.chunks += 1
                        if started is not None and outcome.chunks >= 2:
                            started.set()
                    outcome.finish_reason = choice.get("finish_reason") or outcome.finish_reason
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        outcome.seconds = time.monotonic() - t0
    return outcome


def _wait_busy(member, n: int) -> None:
    """Until n requests hold a slot on this instance (its own /health says so)."""
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while time.monotonic() < deadline:
        if httpx.get(member.url + "/health", timeout=5).json().get("busy_slots", 0) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{n} requests never ran at once on {member.address}")


def _keys_on(http: httpx.Client, address: str, n: int) -> list[str]:
    """n conversation keys that nginx's consistent hash sends to this instance (found with
    cheap GETs: the hash does not look at the method)."""
    found = []
    for _ in range(200):
        key = f"conv-{uuid.uuid4().hex[:12]}"
        reply = http.get("/v1/models", headers={SESSION_HEADER: key})
        assert reply.status_code == 200, reply.text
        if reply.headers[INSTANCE_HEADER] == address:
            found.append(key)
            if len(found) == n:
                return found
    raise AssertionError(f"no {n} keys hash to {address} in 200 tries")


def test_thirty_concurrent_clients_all_complete(cluster, http):
    def one(i: int):
        if i % 2:
            return _stream(http, _chat(f"Count to {i}."))
        reply = http.post("/v1/chat/completions", json=_chat(f"Name {i} colours."))
        return StreamOutcome(reply.status_code, reply.headers.get(INSTANCE_HEADER), done=True,
                             finish_reason=reply.json()["choices"][0]["finish_reason"]
                             if reply.status_code == 200 else None)

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(one, range(30)))
    assert [o.status for o in outcomes] == [200] * 30
    assert all(o.done and o.finish_reason in ("stop", "length") and o.error is None for o in outcomes)
    # No key: spread by load over every instance.
    assert {o.instance for o in outcomes} == {m.address for m in cluster.members}
    # The API key is the instances' to check; nginx passes it through, and a 401 is not retried.
    refused = httpx.post(cluster.url + "/v1/chat/completions", json=_chat("hi"), timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_every_turn_of_a_conversation_stays_on_its_instance_and_hits_the_cache(cluster):
    client = openai.OpenAI(base_url=cluster.url + "/v1", api_key=KEY, max_retries=0,
                           timeout=CLIENT_TIMEOUT_S)
    topics = ["lighthouses", "bread", "bicycles", "glaciers", "violins", "tea", "bridges",
              "owls", "volcanoes", "chess"]

    def conversation(i: int) -> list[tuple[str, int, int]]:
        # Seven carry the conversation key in X-Session-Id (vibe-edge's own chat does); three
        # only OpenAI's `user` field, which nginx reads from the body.
        key = f"chat-{uuid.uuid4().hex[:8]}"
        by_header = i < 7
        messages = [{"role": "user", "content": f"Tell me three facts about {topics[i]}. "
                                                f"Conversation {i}: keep each fact short."}]
        turns = []
        for turn in range(3):
            raw = client.chat.completions.with_raw_response.create(
                model="demo", messages=messages, max_tokens=8, temperature=0,
                extra_headers={SESSION_HEADER: key} if by_header else None,
                user=None if by_header else key)
            reply = raw.parse()
            usage = reply.usage
            turns.append((raw.headers[INSTANCE_HEADER], usage.prompt_tokens,
                          usage.prompt_tokens_details.cached_tokens))
            messages += [{"role": "assistant", "content": reply.choices[0].message.content},
                         {"role": "user", "content": f"And a fourth one? (turn {turn + 2})"}]
        return turns

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(conversation, range(10)))
    for i, turns in enumerate(results):
        instances = {instance for instance, _, _ in turns}
        assert len(instances) == 1, f"conversation {i} moved: {turns}"
        for (_, previous_prompt, _), (_, prompt, cached) in zip(turns, turns[1:]):
            # The whole previous turn came from the cache, not only the template's opening.
            assert cached >= previous_prompt > 0, f"conversation {i} was not served warm: {turns}"
            assert prompt > cached
    # Keys spread conversations over the instances (10 keys on one would be a broken hash).
    assert len({turns[0][0] for turns in results}) >= 2


def test_sigkill_mid_run_retries_what_had_not_started_and_cuts_streams_cleanly(cluster, http):
    victim = cluster.members[1]
    keys = _keys_on(http, victim.address, 5)
    long_body = _chat("Write a long story about a lighthouse keeper and the sea.", max_tokens=128)
    started = [threading.Event() for _ in range(3)]
    with ThreadPoolExecutor(12) as pool:
        streams = [pool.submit(_stream, http, long_body, {SESSION_HEADER: k}, s)
                   for k, s in zip(keys[:3], started)]
        # Non-streaming requests on the victim: nothing reaches the client until they finish.
        pending = [pool.submit(http.post, "/v1/chat/completions", json=long_body,
                               headers={SESSION_HEADER: k}) for k in keys[3:]]
        for event in started:
            assert event.wait(CLIENT_TIMEOUT_S), "the streams never started"
        _wait_busy(victim, len(streams) + len(pending))  # all five are running on the victim
        cluster.kill(victim.index)
        # While it is down: its conversations and new ones go elsewhere.
        after = [pool.submit(http.post, "/v1/chat/completions", json=_chat(f"Quick {i}."),
                             headers={SESSION_HEADER: keys[i % len(keys)]} if i % 2 else {})
                 for i in range(6)]
        cut = [f.result(CLIENT_TIMEOUT_S) for f in streams]
        retried = [f.result(CLIENT_TIMEOUT_S) for f in pending]
        moved = [f.result(CLIENT_TIMEOUT_S) for f in after]

    for outcome in cut:  # started on the victim: cut by the kill, and the client is told so
        assert outcome.status == 200 and outcome.instance == victim.address
        assert outcome.chunks >= 2 and not outcome.done and outcome.finish_reason is None
        assert outcome.error is not None and "RemoteProtocolError" in outcome.error, outcome
        assert outcome.seconds < CLIENT_TIMEOUT_S  # ended, not timed out
    for reply in retried + moved:  # not started: retried on another instance, and succeed
        assert reply.status_code == 200, reply.text
        assert reply.headers[INSTANCE_HEADER] != victim.address
        assert reply.json()["choices"][0]["finish_reason"] in ("stop", "length")
    # Nothing hung: every call above returned within its timeout.
    # The log shows the retries: tried on the victim first, then on another instance.
    retries = [line for line in cluster.access_log().splitlines()
               if f"upstream={victim.address}, " in line and " 200 " in line]
    assert len(retries) >= len(pending), cluster.access_log()[-3000:]

    # Back again: after its fail_timeout nginx tries it, and its keys return to it.
    cluster.restart(victim.index)
    deadline = time.monotonic() + 30
    while True:
        reply = http.post("/v1/chat/completions", json=_chat("Back?", max_tokens=2),
                          headers={SESSION_HEADER: keys[0]})
        assert reply.status_code == 200, reply.text
        if reply.headers[INSTANCE_HEADER] == victim.address:
            break
        assert time.monotonic() < deadline, "the restarted instance never got its traffic back"
        time.sleep(0.5)
    seen = {http.post("/v1/chat/completions", json=_chat(f"Load {i}.", max_tokens=2)).headers[INSTANCE_HEADER]
            for i in range(9)}
    assert victim.address in seen  # and a share of new conversations


def test_sigterm_drains_without_failing_a_request(cluster, http):
    victim = cluster.members[2]
    keys = _keys_on(http, victim.address, 4)
    body = _chat("Describe a walk through a busy market, with many details.", max_tokens=96)
    started = [threading.Event() for _ in range(2)]
    stop_load = threading.Event()

    def load(i: int) -> list[tuple[int, str, str | None]]:
        """New requests all through the drain: half keyed to the victim, half not."""
        seen = []
        while not stop_load.is_set():
            headers = {SESSION_HEADER: keys[i % len(keys)]} if i % 2 else {}
            reply = http.post("/v1/chat/completions", json=_chat(f"Short {i}.", max_tokens=4),
                              headers=headers)
            seen.append((reply.status_code, reply.headers.get(INSTANCE_HEADER), reply.text[:200]))
        return seen

    with ThreadPoolExecutor(12) as pool:
        streams = [pool.submit(_stream, http, body, {SESSION_HEADER: k}, s)
                   for k, s in zip(keys[:2], started)]
        running = [pool.submit(http.post, "/v1/chat/completions", json=body,
                               headers={SESSION_HEADER: k}) for k in keys[2:]]
        for event in started:
            assert event.wait(CLIENT_TIMEOUT_S), "the streams never started"
        loads = [pool.submit(load, i) for i in range(4)]
        time.sleep(0.5)
        cluster.terminate(victim.index)
        t_term = time.monotonic()
        time.sleep(3)  # new traffic during the drain
        stop_load.set()
        drained = [f.result(CLIENT_TIMEOUT_S) for f in streams]
        finished = [f.result(CLIENT_TIMEOUT_S) for f in running]
        new = [r for f in loads for r in f.result(CLIENT_TIMEOUT_S)]
        assert cluster.wait_exit(victim.index, GRACE_S + 15) == 0
    drain_s = time.monotonic() - t_term

    for outcome in drained:  # running on the victim: finished there, whole
        assert outcome.status == 200 and outcome.instance == victim.address, outcome
        assert outcome.done and outcome.error is None and outcome.finish_reason in ("stop", "length"), outcome
    for reply in finished:
        assert reply.status_code == 200 and reply.headers[INSTANCE_HEADER] == victim.address, reply.text
    assert new and all(status == 200 for status, _, _ in new), [r for r in new if r[0] != 200][:3]
    assert drain_s < GRACE_S + 10
    cluster.restart(victim.index)
    assert http.get("/health").status_code == 200
