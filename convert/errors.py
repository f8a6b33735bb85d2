"""Errors raised by the conversion pipeline.

Each one says what is wrong with the input and what the user can do about it; all are
VibeEdgeError subclasses so the CLI prints them without a traceback.
"""

from __future__ import annotations

from vibe_edge.errors import ModelNotFound, VibeEdgeError

__all__ = [
    "CheckpointError",
    "ConvertError",
    "ConversionInterrupted",
    "DependencyMissing",
    "HubError",
    "InsufficientDiskSpace",
    "TokenizerError",
    "UnsupportedArchitecture",
    "VerificationFailed",
]


class ConvertError(VibeEdgeError):
    """Base class for everything convert/ raises on purpose."""

    status, type, code = 400, "invalid_request_error", "convert_failed"


class UnsupportedArchitecture(ConvertError):
    code = "unsupported_architecture"


class CheckpointError(ConvertError):
    """The checkpoint folder is incomplete or damaged (missing shard, corrupt header, bad shape)."""

    code = "bad_checkpoint"


class TokenizerError(ConvertError):
    """The tokenizer is missing, or its pre-tokenizer cannot be identified (never guessed)."""

    code = "bad_tokenizer"


class InsufficientDiskSpace(ConvertError):
    status, type, code = 507, "server_error", "insufficient_disk_space"


class ConversionInterrupted(ConvertError):
    code = "interrupted"


class VerificationFailed(ConvertError):
    """The converted file does not reproduce the checkpoint within the stated thresholds."""

    status, type, code = 500, "server_error", "verification_failed"


class DependencyMissing(ConvertError):
    """An optional dependency (llama-cpp-python, transformers, torch) is not installed."""

    status, type, code = 500, "server_error", "dependency_missing"


class HubError(ModelNotFound):
    """The hub could not give us the repository (unknown, gated, offline and not cached)."""

    code = "hub_error"

