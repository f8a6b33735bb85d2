"""Structured output: GBNF grammars for `response_format`, built with llama.cpp's own
JSON-schema converter (as bound in llama-cpp-python) so the grammar dialect always matches the
llama.cpp that enforces it."""

from __future__ import annotations

import json
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from vibe_edge.errors import InvalidRequest
from vibe_edge.types import SamplingParams

__all__ = ["grammar_for", "json_object_grammar", "json_schema_grammar"]


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


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """A grammar for JSON that validates against `schema` (response_format json_schema)."""
    if not isinstance(schema, dict):
        raise InvalidRequest("response_format.json_schema.schema must be a JSON object",
                             param="response_format")
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises plain exceptions for unsupported schemas
        raise InvalidRequest(f"this JSON schema cannot be turned into a grammar: {exc}",
                             param="response_format") from exc
