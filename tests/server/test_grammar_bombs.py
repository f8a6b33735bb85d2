"""Grammar bombs against `vibe-edge serve` in a subprocess: a JSON schema that asks for more
than llama.cpp's grammar code can take (stack overflow: the whole process dies; gigabytes of
grammar text) is a 400 naming the field, and the server is alive and answering afterwards.
Ends with a hypothesis fuzz pass over response_format with large numeric bounds."""

from __future__ import annotations

import re

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_cli_serve import _serve, _wait_for_line

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Give me the JSON."}]


@pytest.fixture(scope="module")
def served():
    proc = _serve("--model", "demo", "--port", "0", "--slots", "2", "--ctx", "1024", "--threads", "1",
                  "--grace", "2")
    try:
        lines = _wait_for_line(proc, "vibe-edge: ready")
        [url] = re.findall(r"listening on (http://127\.0\.0\.1:\d+)", "".join(lines))
        with httpx.Client(base_url=url, timeout=120) as client:
            yield proc, client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            proc.kill()
            proc.wait()


def _ask(client: httpx.Client, schema, **extra) -> httpx.Response:
    return client.post(CHAT, json={"messages": HELLO, "max_tokens": 4, "temperature": 0,
                                   "response_format": {"type": "json_schema",
                                                       "json_schema": {"name": "x", "schema": schema}},
                                   **extra})


def _assert_alive(proc, client: httpx.Client) -> None:
    assert proc.poll() is None, f"the server died (exit {proc.returncode})"
    assert client.get("/health").json()["status"] == "ok"
    reply = client.post(CHAT, json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
                                    "temperature": 0})
    assert reply.status_code == 200, reply.text


def _nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


BOMBS = {
    "maxLength 100000 (the 170-byte segfault)": ({"type": "string", "maxLength": 100000}, "maxLength"),
    "maxItems 100000": ({"type": "array", "items": {"type": "integer"}, "maxItems": 100000}, "maxItems"),
    "pattern a{0,100000}": ({"type": "string", "pattern": "^a{0,100000}$"}, "pattern"),
    "minLength 10^9 (20 GB of RSS)": ({"type": "string", "minLength": 1_000_000_000}, "minLength"),
    "minLength 10^8": ({"type": "string", "minLength": 100_000_000}, "minLength"),
    "minItems as a float": ({"type": "array", "minItems": 1e12}, "minItems"),
    "enum of 20,000": ({"enum": [f"v{i}" for i in range(20_000)]}, "enum"),
    "nesting 200 deep": (_nested(200), "depth"),
    "nested quantifiers": ({"type": "string", "pattern": "^(a{0,999}){0,999}$"}, "nested"),
    "200 nested groups in a pattern": ({"type": "string", "pattern": "^" + "(" * 200 + "a" + ")" * 200 + "$"}, "nesting"),
    "anyOf of 5,000": ({"anyOf": [{"const": i} for i in range(5000)]}, "anyOf"),
    "1,000 properties": ({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(1000)}}, "properties"),
    "a remote $ref": ({"$ref": "https://attacker.example/schema.json"}, "$ref"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_grammar_bomb_is_a_400_and_the_server_lives(served, name):
    proc, client = served
    schema, field = BOMBS[name]
    rss_before = psutil.Process(proc.pid).memory_info().rss
    reply = _ask(client, schema)
    assert reply.status_code == 400, reply.text[:500]
    error = reply.json()["error"]
    assert error["param"] == "response_format" and error["type"] == "invalid_request_error"
    assert field.lower() in error["message"].lower(), error["message"]
    _assert_alive(proc, client)
    assert psutil.Process(proc.pid).memory_info().rss - rss_before < 300 * 2**20


def test_a_raw_grammar_is_refused_not_ignored(served):
    proc, client = served
    reply = client.post(CHAT, json={"messages": HELLO, "max_tokens": 2,
                                    "grammar": 'root ::= "a"' + "(" * 50000 + ")" * 50000})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "grammar"
    _assert_alive(proc, client)


@pytest.mark.parametrize("schema", [
    {"type": "string", "maxLength": 1000},
    {"type": "string", "minLength": 1000},
    {"type": "array", "items": {"type": "string", "maxLength": 1000}, "maxItems": 1000},
    {"type": "string", "pattern": "^a{0,1000}$"},
    {"enum": [f"value-{i}" for i in range(256)]},
    _nested(30),
], ids=["maxLength", "minLength", "maxItems", "pattern", "enum", "nested"])
def test_schemas_at_the_limits_are_served(served, schema):
    proc, client = served
    reply = _ask(client, schema)
    assert reply.status_code == 200, reply.text[:500]
    _assert_alive(proc, client)


# -- fuzz ---------------------------------------------------------------------------------------

BIG = st.one_of(st.integers(0, 20), st.integers(0, 10**12), st.sampled_from([999, 1000, 1001, 2**31, 2**63]),
                st.floats(0, 1e15, allow_nan=False), st.integers(-5, -1))


def _pattern(draw_bounds):
    return st.builds(lambda a, b, c, group: ("^" + ("(" if group else "") + "[a-z]" + "{" + f"{a},{b}" + "}"
                                             + (")" if group else "") + "{0," + str(c) + "}$"),
                     draw_bounds, draw_bounds, draw_bounds, st.booleans())


LEAF = st.one_of(
    st.fixed_dictionaries({"type": st.just("string")},
                          optional={"minLength": BIG, "maxLength": BIG,
                                    "pattern": _pattern(st.integers(0, 10**7))}),
    st.fixed_dictionaries({"type": st.just("integer")}, optional={"minimum": BIG, "maximum": BIG}),
    st.builds(lambda n: {"enum": list(range(n))}, st.integers(0, 3000)),
)
SCHEMAS = st.recursive(LEAF, lambda inner: st.one_of(
    st.builds(lambda items, lo, hi: {"type": "array", "items": items, "minItems": lo, "maxItems": hi},
              inner, BIG, BIG),
    st.builds(lambda props: {"type": "object", "properties": props, "required": list(props)[:1]},
              st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), inner, max_size=4)),
    st.builds(lambda alts: {"anyOf": alts}, st.lists(inner, min_size=1, max_size=3)),
), max_leaves=6)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(schema=SCHEMAS)
def test_fuzz_response_format_with_large_bounds(served, schema):
    proc, client = served
    reply = _ask(client, schema)
    assert reply.status_code in (200, 400), reply.text[:500]
    if reply.status_code == 400:
        assert reply.json()["error"]["param"] == "response_format"
    assert proc.poll() is None, f"the server died on {schema!r}"


def test_still_alive_after_the_fuzz(served):
    _assert_alive(*served)
