"""Chat template rendering: the real Qwen2.5-Math template, the sandbox, message validation."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from vibe_edge.text import template as template_module
from vibe_edge.text.template import (
    CHATML_TEMPLATE,
    normalize_messages,
    prompt_prefills_think,
    render_chat,
)
from vibe_edge.errors import InvalidRequest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
QWEN_MATH_CONFIG = SHARED / "fixtures" / "qwen2.5-math-1.5b" / "tokenizer_config.json"

QWEN_DEFAULT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@pytest.fixture(scope="module")
def qwen_template() -> str:
    return json.loads(QWEN_MATH_CONFIG.read_text(encoding="utf-8"))["chat_template"]


# -- the real template ---------------------------------------------------------------------------

def test_qwen_math_system_and_user(qwen_template: str) -> None:
    messages = [
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert render_chat(messages, template=qwen_template) == (
        "<|im_start|>system\nYou are a careful mathematician.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen_math_default_system_prompt(qwen_template: str) -> None:
    rendered = render_chat([{"role": "user", "content": "Solve x+1=3."}], template=qwen_template)
    assert rendered == (
        f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nSolve x+1=3.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen_math_multi_turn_and_no_generation_prompt(qwen_template: str) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},  # OpenAI's new name for system
        {"role": "user", "content": [{"type": "text", "text": "1+1?"}]},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "And 2+2?"},
        {"role": "assistant", "content": None},
    ]
    assert render_chat(messages, template=qwen_template, add_generation_prompt=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n1+1?<|im_end|>\n"
        "<|im_start|>assistant\n2<|im_end|>\n"
        "<|im_start|>user\nAnd 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
    )


def test_builtin_chatml_when_no_template() -> None:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert render_chat(messages, template=None) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_chat(messages, template=None, add_generation_prompt=False).endswith("U<|im_end|>\n")
    assert render_chat(messages, template=CHATML_TEMPLATE) == render_chat(messages, template=None)


# -- the environment -----------------------------------------------------------------------------

USER = [{"role": "user", "content": "héllo"}]


def test_tokens_and_generation_flag_reach_the_template() -> None:
    source = "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}"
    assert render_chat(USER, template=source, bos_token="<s>", eos_token="</s>") == "<s>|</s>|True"


def test_trim_and_lstrip_blocks() -> None:
    source = ("{% for m in messages %}\n"
              "    {% if m.role == 'user' %}\n"
              "[{{ m.content }}]\n"
              "    {% endif %}\n"
              "{% endfor %}\n")
    assert render_chat(USER, template=source) == "[héllo]\n"


def test_tojson_keeps_non_ascii_and_accepts_indent() -> None:
    assert render_chat(USER, template="{{ messages[0] | tojson }}") == '{"role": "user", "content": "héllo"}'
    assert render_chat(USER, template="{{ {'a': '<b>'} | tojson(indent=2) }}") == '{\n  "a": "<b>"\n}'


def test_strftime_now() -> None:
    year = datetime.datetime.now().strftime("%Y")
    assert render_chat(USER, template="{{ strftime_now('%Y') }}") in {year, str(int(year) + 1)}


def test_loop_controls() -> None:
    source = ("{% for m in messages %}{% if m.role == 'assistant' %}{% continue %}{% endif %}"
              "{{ m.content }}{% if loop.index == 3 %}{% break %}{% endif %}{% endfor %}")
    messages = [{"role": "user", "content": c} for c in "abcde"]
    messages.insert(1, {"role": "assistant", "content": "X"})
    assert render_chat(messages, template=source) == "ab"


def test_raise_exception_is_an_invalid_request() -> None:
    source = ("{% if messages[0].role != 'system' %}"
              "{{ raise_exception('System message required') }}{% endif %}")
    with pytest.raises(InvalidRequest) as info:
        render_chat(USER, template=source)
    assert info.value.message == "System message required"
    assert info.value.param == "messages"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__ }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ raise_exception.__globals__ }}",
    "{{ messages.append({'role': 'user', 'content': 'x'}) }}",  # immutable sandbox
    "{{ messages[0].update({'role': 'x'}) }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
])
def test_sandbox_escapes_are_refused(source: str) -> None:
    messages = [{"role": "user", "content": "x"}]
    with pytest.raises(InvalidRequest) as info:
        render_chat(messages, template=source)
    assert "chat template failed" in info.value.message
    assert messages == [{"role": "user", "content": "x"}]


@pytest.mark.parametrize("source", [
    "{% for m in messages %}",                  # syntax error
    "{{ messages[0].content + none }}",          # str + None
    "{{ undefined_thing.attribute }}",           # undefined
    "{{ messages[5].content.upper() }}",
])
def test_broken_templates_are_invalid_requests(source: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        render_chat(USER, template=source)
    assert info.value.message.startswith("the model's chat template failed")


def test_compiled_templates_are_cached() -> None:
    source = "cached {{ messages | length }}"
    before = template_module._compile.cache_info()
    render_chat(USER, template=source)
    render_chat(USER, template=source)
    after = template_module._compile.cache_info()
    assert after.hits - before.hits >= 1
    assert after.currsize >= 1


# -- message validation --------------------------------------------------------------------------

@pytest.mark.parametrize("messages,fragment", [
    ([], "must not be empty"),
    ("hello", "must be a list"),
    ({"role": "user", "content": "x"}, "must be a list"),
    (None, "must be a list"),
    (["hello"], "messages[0]"),
    ([{"content": "x"}], "messages[0].role"),
    ([{"role": 3, "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": "ok"}, {"role": "tool", "content": "x"}], "messages[1].role 'tool'"),
    ([{"role": "wizard", "content": "x"}], "not supported"),
    ([{"role": "user"}], "messages[0].content is required"),
    ([{"role": "system", "content": None}], "messages[0].content is required"),
    ([{"role": "user", "content": 5}], "messages[0].content must be a string"),
    ([{"role": "user", "content": b"bytes"}], "messages[0].content must be a string"),
    ([{"role": "user", "content": ["x"]}], "messages[0].content[0]"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}], "text only"),
    ([{"role": "user", "content": [{"type": "text", "text": None}]}], "messages[0].content[0].text"),
])
def test_bad_messages(messages: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize_messages(messages)
    assert info.value.param == "messages"
    assert fragment in info.value.message
    with pytest.raises(InvalidRequest):
        render_chat(messages, template=None)


def test_normalize_messages_returns_clean_copies() -> None:
    messages = [
        {"role": "developer", "content": "sys", "name": "ignored"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None},
        {"role": "assistant"},
    ]
    original = copy.deepcopy(messages)
    assert normalize_messages(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": ""},
    ]
    assert messages == original
    assert normalize_messages(tuple(messages)) == normalize_messages(messages)


# -- pre-filled think tag ------------------------------------------------------------------------

def test_prompt_prefills_think(qwen_template: str) -> None:
    assert not prompt_prefills_think(render_chat(USER, template=qwen_template))
    prefilling = CHATML_TEMPLATE + "{% if add_generation_prompt %}<think>\n{% endif %}"
    prompt = render_chat(USER, template=prefilling)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    assert prompt_prefills_think(prompt)
    assert prompt_prefills_think("x<think>  \n\n")
    assert not prompt_prefills_think("x<think>y")
    assert not prompt_prefills_think("x</think>\n")
    assert not prompt_prefills_think("")
