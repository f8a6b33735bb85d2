"""Text processing below the engine: prompts in, reasoning and answers out.

Pure Python (no llama.cpp, nothing of the engine): chat templates, the think-block parser, the
loop guard, the boxed-answer extractor and the CJK advisory. The engine imports these; they
import only vibe_edge.types and vibe_edge.errors.
"""

from vibe_edge.text.boxed import extract_boxed
from vibe_edge.text.language import (
    CJK_ADVISORY,
    DEFAULT_CJK_MIN_LETTERS,
    DEFAULT_CJK_THRESHOLD,
    cjk_advisory,
    cjk_ratio,
)
from vibe_edge.text.loop_guard import (
    DEFAULT_CHECK_EVERY,
    DEFAULT_MAX_PERIOD,
    DEFAULT_MIN_REPEATS,
    DEFAULT_MIN_SPAN,
    DEFAULT_TOLERANCE,
    LoopGuard,
)
from vibe_edge.text.reasoning import (
    DEFAULT_CLOSE_TAG,
    DEFAULT_OPEN_TAG,
    Piece,
    ReasoningParser,
    split_reasoning,
)
from vibe_edge.text.template import (
    CHATML_TEMPLATE,
    normalize_messages,
    prompt_prefills_think,
    render_chat,
)

__all__ = [
    # reasoning
    "DEFAULT_OPEN_TAG",
    "DEFAULT_CLOSE_TAG",
    "Piece",
    "ReasoningParser",
    "split_reasoning",
    # boxed
    "extract_boxed",
    # language
    "DEFAULT_CJK_THRESHOLD",
    "DEFAULT_CJK_MIN_LETTERS",
    "CJK_ADVISORY",
    "cjk_ratio",
    "cjk_advisory",
    # loop guard
    "DEFAULT_MAX_PERIOD",
    "DEFAULT_MIN_SPAN",
    "DEFAULT_MIN_REPEATS",
    "DEFAULT_CHECK_EVERY",
    "DEFAULT_TOLERANCE",
    "LoopGuard",
    # template
    "CHATML_TEMPLATE",
    "normalize_messages",
    "render_chat",
    "prompt_prefills_think",
]
