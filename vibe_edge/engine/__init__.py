"""The engine: the only code that talks to llama.cpp. See docs/ENGINE_API.md.

The vocabulary (requests, events, results, ModelInfo, EngineStatus, the EngineAPI protocol)
lives in the leaf module vibe_edge.types and is re-exported here, so `from vibe_edge.engine
import ...` gives the whole public API.
"""

from vibe_edge.engine._llama import supports_gpu_offload
from vibe_edge.engine.engine import Engine, EngineConfig
from vibe_edge.engine.handle import RequestHandle
from vibe_edge.types import (
    EngineAPI,
    EngineStatus,
    Event,
    EventStream,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    Notice,
    ReasoningEnd,
    ReasoningOptions,
    RequestStats,
    RequestStream,
    SampleFinished,
    SamplingParams,
    SpecConfig,
    Started,
    StructuredOutput,
    TextDelta,
    VoteGroup,
    VoteOutcome,
)

__all__ = [
    "Engine", "EngineAPI", "EngineConfig", "EngineStatus", "Event", "EventStream", "Finished",
    "FinishReason", "GenerationRequest", "GenerationResult", "ModelInfo", "Notice", "ReasoningEnd",
    "ReasoningOptions", "RequestHandle", "RequestStats", "RequestStream", "SampleFinished", "SamplingParams",
    "SpecConfig", "Started", "StructuredOutput", "TextDelta", "VoteGroup", "VoteOutcome", "supports_gpu_offload",
]
