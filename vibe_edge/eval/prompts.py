"""From a problem to the request the engine runs: the prompt, the preset's sampling, the budget.

The one place the eval turns (preset, problem, thinking budget, sample number) into a
GenerationRequest, using only the engine's public types and the chat presets.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

from vibe_edge.chat.presets import Preset, apply_preset, resolve_thinking_budget
from vibe_edge.engine import GenerationRequest, ReasoningOptions
from vibe_edge.eval.datasets import Problem, Task

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
                thinking_budget: int | None) -> tuple[GenerationRequest, list[dict[str, Any]]]:
    """(request, messages). thinking_budget is the user's value (-1 none, 0 no thinking,
    None the preset's), resolved as everywhere else in vibe-edge."""
    preset = plan.preset
    messages = problem_messages(task, problem, preset)
    changes: dict[str, Any] = {"seed": sample_seed(plan.seed, problem.id, sample)}
    if plan.temperature is not None:
        changes["temperature"] = plan.temperature
    request = GenerationRequest(
        messages=messages,
        sampling=dataclasses.replace(preset.sampling, **changes),
        max_tokens=plan.max_tokens or preset.max_tokens,
        reasoning=ReasoningOptions(thinking_budget=resolve_thinking_budget(thinking_budget, preset.thinking_budget)),
        deadline_s=plan.deadline_s,
    )
    return request, messages
