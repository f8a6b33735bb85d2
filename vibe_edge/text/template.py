"""Turn OpenAI-style chat messages into a prompt with the model's own chat template.

A GGUF carries its chat template as Jinja source written by whoever published the file, so we
treat it as untrusted code: it runs in Jinja's immutable sandbox, with only the few helpers that
Hugging Face-style templates expect (`raise_exception`, `strftime_now`, `tojson`, loop controls).
Every failure, the template's own `raise_exception` included, becomes an InvalidRequest.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from vibe_edge.text.reasoning import DEFAULT_OPEN_TAG
from vibe_edge.errors import InvalidRequest, VibeEdgeError

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_TEMPLATE_CACHE_SIZE",
    "DEFAULT_PART_SEPARATOR",
    "ROLES",
    "normalize_messages",
    "render_chat",
    "prompt_prefills_think",
]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""Plain ChatML, used when the model file carries no template (VibeThinker's own format)."""

DEFAULT_TEMPLATE_CACHE_SIZE = 8
"""Compiled templates kept: one per loaded model in practice, a few for tests and reloads."""

DEFAULT_PART_SEPARATOR = "\n"
"""Joins the text parts of one message: parts are usually separate paragraphs."""

ROLES = ("system", "user", "assistant")
"""Roles a message may have after normalisation."""

# OpenAI's newer name for the system role.
_ROLE_ALIASES = {"developer": "system"}

_PARAM = "messages"


class _ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, made loud: an unsafe attribute fails at once instead of rendering ''."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _raise_exception(message: str) -> NoReturn:
    # Templates call this to reject a conversation they cannot format (e.g. roles that do not
    # alternate): that is the client's mistake, reported in the template's words.
    raise InvalidRequest(str(message), param=_PARAM)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Unlike Jinja's built-in tojson: no HTML escaping (this is a prompt, not a web page) and
    # non-ASCII stays as is, so the model sees "é" rather than "\u00e9".
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = _ChatTemplateEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    return env


_ENV = _make_environment()


@functools.lru_cache(maxsize=DEFAULT_TEMPLATE_CACHE_SIZE)
def _compile(source: str) -> Template:
    return _ENV.from_string(source)


def _template_failed(exc: BaseException) -> InvalidRequest:
    return InvalidRequest(
        f"the model's chat template failed: {type(exc).__name__}: {exc}",
        hint="the chat template embedded in the model file is broken or uses unsupported "
             "features; pass a working template or use raw prompts",
        param=_PARAM,
    )


def _content_text(content: Any, index: int, role: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        if role == "assistant":
            # An assistant turn without text (it only called tools elsewhere): templates
            # concatenate content, so give them an empty string rather than None.
            return ""
        raise InvalidRequest(f"messages[{index}].content is required for role {role!r}",
                             param=_PARAM)
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        texts: list[str] = []
        for part_index, part in enumerate(content):
            where = f"messages[{index}].content[{part_index}]"
            if not isinstance(part, Mapping):
                raise InvalidRequest(f"{where} must be an object like "
                                     '{"type": "text", "text": "..."}', param=_PARAM)
            if part.get("type") != "text":
                raise InvalidRequest(f"{where} has type {part.get('type')!r}; this model reads "
                                     "text only, so only 'text' parts are accepted", param=_PARAM)
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}.text must be a string", param=_PARAM)
            texts.append(text)
        return DEFAULT_PART_SEPARATOR.join(texts)
    raise InvalidRequest(f"messages[{index}].content must be a string or a list of text parts, "
                         f"got {type(content).__name__}", param=_PARAM)


def normalize_messages(messages: Any) -> list[dict[str, str]]:
    """Validate OpenAI-style messages; return new dicts with only "role" and "content" (str).

    "developer" becomes "system", text parts are joined, an assistant's None content becomes "".
    Raises InvalidRequest (param "messages") naming the first problem and its index.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidRequest(f"messages must be a list of message objects, "
                             f"got {type(messages).__name__}", param=_PARAM)
    if not messages:
        raise InvalidRequest("messages must not be empty", param=_PARAM)
    normalized: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequest(f"messages[{index}] must be an object with role and content, "
                                 f"got {type(message).__name__}", param=_PARAM)
        role = message.get("role")
        if not isinstance(role, str):
            raise InvalidRequest(f"messages[{index}].role is missing or not a string",
                                 param=_PARAM)
        role = _ROLE_ALIASES.get(role, role)
        if role not in ROLES:
            raise InvalidRequest(f"messages[{index}].role {role!r} is not supported; use one of "
                                 f"{', '.join(ROLES)} (or developer)", param=_PARAM)
        if "content" not in message and role != "assistant":
            raise InvalidRequest(f"messages[{index}].content is required for role {role!r}",
                                 param=_PARAM)
        content = _content_text(message.get("content"), index, role)
        normalized.append({"role": role, "content": content})
    return normalized


def render_chat(
    messages: Any,
    *,
    template: str | None,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render `messages` (validated with normalize_messages) into a prompt string.

    `template` is the model's Jinja chat template; None uses plain ChatML.
    """
    normalized = normalize_messages(messages)
    source = CHATML_TEMPLATE if template is None else template
    try:
        compiled = _compile(source)
        return compiled.render(
            messages=normalized,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except VibeEdgeError:
        raise  # raise_exception() from inside the template: already the right error
    except Exception as exc:  # noqa: BLE001
        # TemplateError (syntax, undefined), SecurityError (sandbox), and plain Python errors
        # such as str + None: the template is foreign code, so any failure is its failure.
        raise _template_failed(exc) from exc


def prompt_prefills_think(prompt: str, *, open_tag: str = DEFAULT_OPEN_TAG) -> bool:
    """True when the rendered prompt already ends with the think tag (ignoring whitespace).

    Then the model's output holds only the close tag; start the ReasoningParser in reasoning.
    """
    return prompt.rstrip().endswith(open_tag)
