"""Chat helpers around the engine: prompts in, reasoning and answers out.

Pure Python (no llama.cpp): templates, presets, the think-block parser, the loop guard, the
boxed-answer extractor and the CJK advisory.
"""

from vibe_edge.chat.boxed import extract_boxed
from vibe_edge.chat.language import (
    CJK_ADVISORY,
    DEFAULT_CJK_MIN_LETTERS,
    DEFAULT_CJK_THRESHOLD,
    cjk_advisory,
    cjk_ratio,
)
from vibe_edge.chat.loop_guard import (
    DEFAULT_CHECK_EVERY,
    DEFAULT_MAX_PERIOD,
    DEFAULT_MIN_REPEATS,
    DEFAULT_MIN_SPAN,
    DEFAULT_TOLERANCE,
    LoopGuard,
)
from vibe_edge.chat.reasoning import (
    DEFAULT_CLOSE_TAG,
    DEFAULT_OPEN_TAG,
    Piece,
    ReasoningParser,
    split_reasoning,
)
from vibe_edge.chat.template import (
    CHATML_TEMPLATE,
    normalize_messages,
    prompt_prefills_think,
    render_chat,
)

# Last: presets needs vibe_edge.engine.types, and importing that runs the engine package, which
# imports the chat modules above; they are all complete by now.
from vibe_edge.chat.presets import DEFAULT_PRESET, PRESETS, Preset, apply_preset, get_preset  # noqa: E402

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
    # presets
    "DEFAULT_PRESET",
    "Preset",
    "PRESETS",
    "get_preset",
    "apply_preset",
]
