"""`vibe-edge eval`: measure what a model gets right, on this machine.

    datasets     tasks (gsm8k, math500, humaneval, jsonl:PATH) and subsets
    prompts      problem -> GenerationRequest (preset, thinking budget, per-sample seed)
    graders      math by answer equivalence (math-verify), code by running the tests
    sandbox      the separate, limited process that runs candidate code
    runner       the batch loop over the engine's slots, progress, Ctrl-C, results file
    results      the JSONL results file (--out, --resume)
    report       accuracy with intervals, time, tokens; paired comparison of two runs
    stats        Wilson, Newcombe, McNemar, pass@k
    predictions  --grade: predictions from any system, graded the same way

Answer equivalence and voting live below the engine, in vibe_edge.text.equivalence.
"""

from vibe_edge.eval.datasets import BUILTIN_TASKS, Problem, Task, load_task, select_problems
from vibe_edge.eval.types import EvalError, Verdict

__all__ = ["BUILTIN_TASKS", "EvalError", "Problem", "Task", "Verdict", "load_task", "select_problems"]
