"""The engine: the only code that talks to llama.cpp. See docs/ENGINE_API.md."""

from vibe_edge.engine.engine import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CTX_PER_SLOT,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_SLOTS,
    Engine,
    EngineConfig,
    EngineStatus,
    ModelInfo,
)
from vibe_edge.engine.handle import RequestHandle
from vibe_edge.engine.types import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Notice,
    ReasoningEnd,
    ReasoningOptions,
    RequestStats,
    SamplingParams,
    Started,
    TextDelta,
)

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_CTX_PER_SLOT", "DEFAULT_QUEUE_SIZE", "DEFAULT_SLOTS",
    "Engine", "EngineConfig", "EngineStatus", "Event", "Finished", "FinishReason",
    "GenerationRequest", "GenerationResult", "ModelInfo", "Notice", "ReasoningEnd",
    "ReasoningOptions", "RequestHandle", "RequestStats", "SamplingParams", "Started", "TextDelta",
]
