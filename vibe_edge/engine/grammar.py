"""Structured output: GBNF grammars for `response_format`, built with llama.cpp's own
JSON-schema converter (as bound in llama-cpp-python) so the grammar dialect always matches the
llama.cpp that enforces it.

A schema is request data, and what it asks for becomes work for llama.cpp: the converter spells
`maxLength: n` (and `maxItems`, `pattern: "a{0,n}"`) as n nested groups, which llama.cpp's
grammar parser walks recursively (about 440 bytes of stack per level: an 8 MiB thread stack
overflows near 18,750 and kills the process), and `minLength: n` as n copies of a rule (5 bytes
each: 10^9 is a 5 GB string). Alternatives (enum, anyOf) make grammar sampling cost grow with
their count. So a schema is bounded *before* conversion, field by field (a 400 naming what to
lower), and the grammar text is bounded again before llama.cpp parses it, whichever way it was
made (`check_gbnf`). The limits and how they were measured: docs/SERVER.md, "Input limits";
`python bench/grammar_limits.py` re-measures them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from vibe_edge.errors import InvalidRequest
from vibe_edge.types import SamplingParams

__all__ = ["GRAMMAR_LIMITS", "GrammarLimits", "check_gbnf", "check_schema", "grammar_for",
           "json_object_grammar", "json_schema_grammar"]

PARAM = "response_format"


@dataclass(frozen=True)
class GrammarLimits:
    """What one structured-output request may ask for (see docs/SERVER.md for the measurements)."""

    # minLength, maxLength, minItems, maxItems and the {m,n} bounds of a pattern. llama.cpp
    # itself stops parsing the converter's output past about 1,500 nested groups; 1,000 keeps an
    # 18x margin to the crash on an 8 MiB stack (the grammar is compiled on one of that size).
    max_repetition: int = 1000
    # The product of {m,n} bounds nested inside each other in one pattern: "(a{0,k}){0,m}" can
    # match one text k*m ways, and every way is a grammar stack that sampling walks.
    max_nested_repetition: int = 1000
    max_pattern_chars: int = 1000
    # enum values, anyOf/oneOf/allOf branches, type lists, "|" alternatives in a pattern. Each is
    # a grammar stack at its start: llama.cpp's first-token check costs ~1.7 ms per alternative
    # on a 49k vocabulary (and three times that on VibeThinker's 152k), and compiling 20,000
    # alternatives takes 4 s.
    max_alternatives: int = 256
    # Properties of one object: the converter's optional-property rules are quadratic in their
    # count (128: 90 ms to convert, 512: 1.5 s).
    max_properties: int = 128
    # Nesting of JSON objects and arrays in the schema document (an object property takes two
    # levels: "properties", then the property's schema), so about 30 nested objects.
    max_depth: int = 64
    max_pattern_groups: int = 32     # nested (...) groups in one pattern
    max_schema_bytes: int = 64 * 1024
    # The grammar text llama.cpp parses: bytes, rules, nested groups.
    max_grammar_bytes: int = 512 * 1024
    max_grammar_rules: int = 2048
    max_grammar_nesting: int = 1024


GRAMMAR_LIMITS = GrammarLimits()
_COUNT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties",
                   "maxProperties", "minContains", "maxContains")
_COMBINATORS = ("anyOf", "oneOf", "allOf", "prefixItems")


def unbounded_schema_grammar(schema_json: str) -> str:
    """llama.cpp's JSON-schema converter without vibe-edge's bounds (check_schema): for
    measuring those bounds (bench/grammar_limits.py), never for requests."""
    return json_schema_to_gbnf(schema_json)


def grammar_for(sampling: SamplingParams) -> str | None:
    """The GBNF a request's sampling asks for: its own grammar, or one built from its
    structured output format (InvalidRequest, param response_format, for a schema that cannot
    be turned into a grammar)."""
    output = sampling.structured_output
    if output is None:
        return sampling.grammar
    if output.schema is None:
        return json_object_grammar()
    return json_schema_grammar(dict(output.schema))


def json_object_grammar() -> str:
    """Any JSON object (OpenAI's response_format {"type": "json_object"})."""
    return JSON_GBNF


def json_schema_grammar(schema: dict[str, Any], limits: GrammarLimits = GRAMMAR_LIMITS) -> str:
    """A grammar for JSON that validates against `schema` (response_format json_schema)."""
    if not isinstance(schema, dict):
        raise InvalidRequest("response_format.json_schema.schema must be a JSON object", param=PARAM)
    check_schema(schema, limits)
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises plain exceptions for unsupported schemas
        raise InvalidRequest(f"this JSON schema cannot be turned into a grammar: {exc}",
                             param=PARAM) from exc
    check_gbnf(grammar, limits, what="the grammar made from this JSON schema")
    return grammar


# -- the schema ---------------------------------------------------------------------------------

def _too_much(where: str, what: str, value: object, limit: int) -> InvalidRequest:
    if len(where) > 120:
        where = "..." + where[-100:]
    return InvalidRequest(
        f"response_format.json_schema.schema{where}: {what} is {value}, more than this server "
        f"allows ({limit:,})", hint="lower it; docs/SERVER.md lists the input limits", param=PARAM)


def check_schema(schema: dict[str, Any], limits: GrammarLimits = GRAMMAR_LIMITS) -> None:
    """Refuse a schema that would make a grammar too large or too costly, naming the field."""
    _walk(schema, "", 0, limits)  # first: the most precise message names the field
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidRequest(f"response_format.json_schema.schema cannot be read: {exc}",
                             param=PARAM) from None
    if size > limits.max_schema_bytes:
        raise _too_much("", "its size in bytes", f"{size:,}", limits.max_schema_bytes)


def _walk(node: Any, where: str, depth: int, limits: GrammarLimits) -> None:
    if depth > limits.max_depth:
        raise _too_much(where, "the nesting depth", depth, limits.max_depth)
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{where}[{i}]", depth + 1, limits)
        return
    if not isinstance(node, dict):
        return
    for key in _COUNT_KEYWORDS:
        if key in node:
            value = node[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or value != int(value):
                raise InvalidRequest(f"response_format.json_schema.schema{where}.{key} must be a "
                                     f"whole number >= 0, got {value!r}", param=PARAM)
            if value > limits.max_repetition:
                raise _too_much(f"{where}.{key}", key, f"{int(value):,}", limits.max_repetition)
    ref = node.get("$ref")
    if ref is not None and not (isinstance(ref, str) and ref.startswith("#/")):
        # The converter would fetch an https:// reference (only an assert stops it): never.
        raise InvalidRequest(f"response_format.json_schema.schema{where}.$ref must point inside "
                             f"the schema (\"#/...\"), got {ref!r}", param=PARAM)
    for key in ("enum", *_COMBINATORS, "type"):
        value = node.get(key)
        if isinstance(value, list) and len(value) > limits.max_alternatives:
            raise _too_much(f"{where}.{key}", f"the number of {key} entries", f"{len(value):,}",
                            limits.max_alternatives)
    properties = node.get("properties")
    if isinstance(properties, dict) and len(properties) > limits.max_properties:
        raise _too_much(f"{where}.properties", "the number of properties", f"{len(properties):,}",
                        limits.max_properties)
    pattern = node.get("pattern")
    if pattern is not None:
        _check_pattern(pattern, f"{where}.pattern", limits)
    for key, value in node.items():
        if key in ("enum", "const", "default", "examples"):
            continue  # values, not schemas
        if isinstance(value, (dict, list)):
            _walk(value, f"{where}.{key}", depth + 1, limits)


def _check_pattern(pattern: Any, where: str, limits: GrammarLimits) -> None:
    """Bounds of a regular expression as the converter reads it: {m,n} quantifiers (alone and
    nested), "|" alternatives, length."""
    def refuse(what: str, value: object, limit: int) -> InvalidRequest:
        return _too_much(where, what, value, limit)

    if not isinstance(pattern, str):
        raise InvalidRequest(f"response_format.json_schema.schema{where} must be a string",
                             param=PARAM)
    if len(pattern) > limits.max_pattern_chars:
        raise refuse("its length", f"{len(pattern):,}", limits.max_pattern_chars)
    # Track, per open group, the repetition its contents already carry, so a quantifier on a
    # group multiplies with the ones inside it.
    stack: list[int] = [1]      # the largest nested product inside the group being read
    last_group = 1              # product inside the group just closed (its quantifier applies)
    alternatives = 1
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            last_group = 1
            continue
        if c == "[":
            i += 1
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
            last_group = 1
            continue
        if c == "(":
            stack.append(1)
            if len(stack) - 1 > limits.max_pattern_groups:
                raise refuse("the nesting of groups", len(stack) - 1, limits.max_pattern_groups)
        elif c == ")":
            last_group = stack.pop() if len(stack) > 1 else 1
            stack[-1] = max(stack[-1], last_group)
            i += 1
            continue
        elif c == "|":
            alternatives += 1
            if alternatives > limits.max_alternatives:
                raise refuse('the number of "|" alternatives', alternatives, limits.max_alternatives)
        elif c == "{":
            end = pattern.find("}", i)
            if end < 0:
                break  # the converter reports the syntax error
            bounds = [b.strip() for b in pattern[i + 1:end].split(",")]
            for bound in bounds:
                if bound and not bound.isdigit():
                    break
                if bound and (len(bound) > 9 or int(bound) > limits.max_repetition):
                    raise refuse(f"the repetition bound in {pattern[i:end + 1][:40]}",
                                 bound if len(bound) <= 12 else bound[:12] + "...",
                                 limits.max_repetition)
            else:
                top = max((int(b) for b in bounds if b), default=1)
                product = last_group * max(top, 1)
                if product > limits.max_nested_repetition:
                    raise refuse("the product of nested repetition bounds", f"{product:,}",
                                 limits.max_nested_repetition)
                stack[-1] = max(stack[-1], product)
            i = end + 1
            last_group = 1
            continue
        last_group = 1
        i += 1


# -- the grammar text ---------------------------------------------------------------------------

def check_gbnf(grammar: str, limits: GrammarLimits = GRAMMAR_LIMITS, *,
               what: str = "the grammar") -> None:
    """Bound GBNF text before llama.cpp parses it: size, rule count, nested groups and {m,n}
    repetitions (string literals, character classes and comments are skipped)."""
    def refuse(message: str) -> InvalidRequest:
        return InvalidRequest(f"{what} is too large for this server: {message}",
                              hint="simplify the schema; docs/SERVER.md lists the input limits",
                              param=PARAM)

    if len(grammar) > limits.max_grammar_bytes:
        raise refuse(f"{len(grammar):,} bytes (at most {limits.max_grammar_bytes:,})")
    depth = deepest = rules = 0
    i, n = 0, len(grammar)
    while i < n:
        c = grammar[i]
        if c == '"' or c == "[":
            close = '"' if c == '"' else "]"
            i += 1
            while i < n and grammar[i] != close:
                i += 2 if grammar[i] == "\\" else 1
        elif c == "#":
            while i < n and grammar[i] != "\n":
                i += 1
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
        elif c == ":" and grammar.startswith("::=", i):
            rules += 1
            i += 2
        elif c == "{":
            end = grammar.find("}", i)
            bounds = grammar[i + 1:end].replace(" ", "").split(",") if end > 0 else []
            if any(b.isdigit() and (len(b) > 9 or int(b) > limits.max_repetition) for b in bounds):
                raise refuse(f"a repetition {grammar[i:end + 1][:40]} over "
                             f"{limits.max_repetition:,}")
        i += 1
    if deepest > limits.max_grammar_nesting:
        raise refuse(f"{deepest:,} nested groups (at most {limits.max_grammar_nesting:,})")
    if rules > limits.max_grammar_rules:
        raise refuse(f"{rules:,} rules (at most {limits.max_grammar_rules:,})")
