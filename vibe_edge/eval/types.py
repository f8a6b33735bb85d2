"""The eval's own vocabulary: its error, and the shape of one graded sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vibe_edge.errors import VibeEdgeError

__all__ = ["EvalError", "Verdict"]


class EvalError(VibeEdgeError):
    """A bad task, problem file, results file or option: the message says what to do."""

    status, type, code = 400, "invalid_request_error", "invalid_eval"


@dataclass
class Verdict:
    """How one sample was graded. `extracted` is the answer (math) or code that was judged;
    `detail` says why in a few words ("equivalent", "no \\boxed{} answer", "AssertionError")."""

    correct: bool
    extracted: str | None
    detail: str
    sandbox: dict[str, Any] | None = None
