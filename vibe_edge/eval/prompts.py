"""From a problem to the request the engine runs: the prompt, the preset's sampling, the budget.

The eval's part is the prompt (the problem, a code instruction, the preset's prompts) and the
seed per sample; what the values mean - the preset's sampling, the thinking budget and its
room for the answer - is the one request policy's (vibe_edge.requests), as for the server,
`run` and the chat.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from vibe_edge.eval.datasets import Problem, Task
from vibe_edge.presets import Preset, apply_preset
from vibe_edge.requests import Limits, Overrides, build_request
from vibe_edge.types import GenerationRequest

__all__ = ["DEFAULT_DEADLINE_S", "CODE_INSTRUCTION", "RequestPlan", "problem_messages", "request_for",
           "sample_seed"]

DEFAULT_DEADLINE_S = 6 * 3600.0
"""Per request: a long reasoning trace on a 2-core CPU takes tens of minutes, and the engine's
default deadline (meant for interactive use) would cut it."""

CODE_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, including the "
    "imports it needs, in a single ```python code block."
)


@dataclass(frozen=True)
class RequestPlan:
    """What is fixed for a whole run: the preset and the user's overrides."""

    preset: Preset
    max_tokens: int | None = None      # None: the preset's (the engine clamps to the slot)
    temperature: float | None = None   # None: the preset's
    seed: int = 0
    deadline_s: float = DEFAULT_DEADLINE_S


def problem_messages(task: Task, problem: Problem, preset: Preset) -> list[dict[str, str]]:
    if task.kind == "code":
        content = f"{CODE_INSTRUCTION}\n\n```python\n{problem.problem.rstrip()}\n```"
    else:
        content = problem.problem
    return apply_preset(preset, [{"role": "user", "content": content}])


def sample_seed(seed: int, problem_id: str, sample: int) -> int:
    """A seed per (problem, sample), the same for every thinking budget, so a budget sweep
    compares the same draws and a rerun repeats them."""
    return zlib.crc32(f"{seed}:{problem_id}:{sample}".encode()) & 0xFFFFFFFF


def request_for(plan: RequestPlan, task: Task, problem: Problem, *, sample: int,
                thinking_budget: int | None, ctx_per_slot: int | None = None,
                ) -> tuple[GenerationRequest, list[dict[str, Any]]]:
    """(request, messages). thinking_budget is the user's value (-1 none, 0 no thinking,
    None the preset's), resolved as everywhere else in vibe-edge; ctx_per_slot: the engine's
    slot, so the budget leaves room to answer in it."""
    preset = plan.preset
    messages = problem_messages(task, problem, preset)
    request = build_request(
        preset, messages=messages, apply_prompts=False,  # problem_messages applied them
        overrides=Overrides(temperature=plan.temperature, seed=sample_seed(plan.seed, problem.id, sample),
                            max_tokens=plan.max_tokens, thinking_budget=thinking_budget,
                            deadline_s=plan.deadline_s),
        limits=Limits(ctx_per_slot=ctx_per_slot))
    return request, messages
