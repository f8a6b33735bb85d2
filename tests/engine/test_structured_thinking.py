"""Structured output (a grammar) on a model that thinks: the grammar holds the answer only.

A grammar from the first token would forbid the think block, and VibeThinker without its
reasoning answers far worse. These run the real engine on a tiny random-weight Qwen2 with
VibeThinker's real vocabulary (<think> and </think> are single tokens) and on the demo model
with a template that pre-fills <think>.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vibe_edge.convert.core import convert_folder
from vibe_edge.convert.synth import write_qwen2_checkpoint
from vibe_edge.engine import (
    Engine,
    EngineConfig,
    FinishReason,
    GenerationRequest,
    ReasoningEnd,
    ReasoningOptions,
    SamplingParams,
)
from vibe_edge.engine.grammar import json_schema_grammar

QWEN_FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "qwen2.5-math-1.5b"
# SmolLM2's ChatML with the assistant turn pre-filled with <think>, as some templates do.
THINKING_PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


@pytest.fixture(scope="module")
def thinker(tmp_path_factory):
    folder = write_qwen2_checkpoint(tmp_path_factory.mktemp("ckpt") / "thinker", QWEN_FIXTURE,
                                    overrides=TINY)
    gguf = tmp_path_factory.mktemp("gguf") / "thinker-F16.gguf"
    convert_folder(folder, gguf, outtype="f16")
    with Engine(EngineConfig(model_path=str(gguf), n_slots=2, ctx_per_slot=512)) as eng:
        assert eng.info.thinks
        yield eng


@pytest.fixture(scope="module")
def demo(demo_model):
    with Engine(EngineConfig(model_path=str(demo_model), n_slots=1, ctx_per_slot=512)) as eng:
        assert not eng.info.thinks  # SmolLM2 has no think tokens: only a pre-filled block
        yield eng


def _sampling(engine: Engine, **bias: float) -> SamplingParams:
    """Greedy, end-of-generation banned (a random model would stop anywhere), plus biases on
    the think tags given by name."""
    logit_bias = {t: -100.0 for t in engine.eog_tokens()}
    for tag, value in bias.items():
        logit_bias[engine.tokenize(f"<{tag}>", add_special=False)[0]] = value
    return SamplingParams(temperature=0.0, logit_bias=logit_bias, grammar=json_schema_grammar(SCHEMA))


def test_a_model_that_does_not_open_a_think_block_answers_in_the_grammar_from_token_one(thinker):
    result = thinker.generate(GenerationRequest(prompt="Give me JSON.", sampling=_sampling(thinker, think=-100.0),
                                                max_tokens=60))
    assert result.reasoning == ""
    assert isinstance(json.loads(result.answer)["answer"], int)
    assert result.finish_reason is FinishReason.STOP  # the grammar completed, then only EOG fitted


def test_a_model_that_thinks_reasons_freely_and_answers_in_the_grammar(thinker):
    result = thinker.generate(GenerationRequest(
        prompt="Give me JSON.", sampling=_sampling(thinker, think=100.0), max_tokens=120,
        reasoning=ReasoningOptions(thinking_budget=12, loop_guard=False)))
    assert result.reasoning_end is ReasoningEnd.BUDGET
    assert result.stats.reasoning_tokens >= 12
    assert isinstance(json.loads(result.answer)["answer"], int)


def test_a_prefilled_think_block_stays_free_text(demo):
    sampling = SamplingParams(temperature=0.0, logit_bias={t: -100.0 for t in demo.eog_tokens()},
                              grammar=json_schema_grammar(SCHEMA))
    result = demo.generate(GenerationRequest(
        prompt=THINKING_PROMPT, sampling=sampling, max_tokens=120,
        reasoning=ReasoningOptions(thinking_budget=10)))
    assert result.reasoning_end is ReasoningEnd.BUDGET
    assert not result.reasoning.lstrip().startswith("{")  # the model's own words, not JSON
    assert isinstance(json.loads(result.answer)["answer"], int)


def test_a_zero_budget_closes_the_block_right_after_the_model_opens_it(thinker):
    result = thinker.generate(GenerationRequest(
        prompt="Give me JSON.", sampling=_sampling(thinker, think=100.0), max_tokens=60,
        reasoning=ReasoningOptions(thinking_budget=0)))
    assert result.reasoning_end is ReasoningEnd.BUDGET
    assert result.reasoning.strip() == ""  # only the block's own layout, no thought
    assert isinstance(json.loads(result.answer)["answer"], int)
