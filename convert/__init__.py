"""Hugging Face checkpoint -> faithful, quantized GGUF in models/ (issue 3).

Public API (the CLI in vibe_edge/cli/convert.py and models.py is a thin layer over it):

    run_convert(ConvertRequest(...)) -> ConvertReport   fetch, convert, verify, quantize, register
    pull_model(PullRequest(...)) -> Manifest            fetch a published GGUF and register it
    convert_folder(folder, out_path, outtype=...)       one folder -> one unquantized GGUF
    quantize_gguf(src, out, "Q4_K_M")                   llama.cpp's quantizer, atomic output

Modules, one concern each: reader (lazy safetensors), spec (architecture, tensor plan),
tokenizer (BPE export, pre-tokenizer identification), writer (GGUF), atomic (temp + rename,
free space), quantize, corpus (built-in texts), verify, hub, synth (test/bench checkpoints).
Nothing here imports the server, the TUI or the engine.
"""

from vibe_edge.convert.core import DEFAULT_OUTTYPE, convert_folder, resolve_outtype
from vibe_edge.convert.errors import (
    CheckpointError,
    ConversionInterrupted,
    ConvertError,
    DependencyMissing,
    HubError,
    InsufficientDiskSpace,
    TokenizerError,
    UnsupportedArchitecture,
    VerificationFailed,
)
from vibe_edge.convert.pipeline import ConvertReport, ConvertRequest, PullRequest, pull_model, run_convert
from vibe_edge.convert.quantize import DEFAULT_QUANT, QUANT_TYPES, quantize_gguf
from vibe_edge.convert.spec import SUPPORTED_ARCHITECTURES
from vibe_edge.convert.writer import OUTTYPES

__all__ = [
    "DEFAULT_OUTTYPE",
    "DEFAULT_QUANT",
    "OUTTYPES",
    "QUANT_TYPES",
    "SUPPORTED_ARCHITECTURES",
    "CheckpointError",
    "ConversionInterrupted",
    "ConvertError",
    "ConvertReport",
    "ConvertRequest",
    "DependencyMissing",
    "HubError",
    "InsufficientDiskSpace",
    "PullRequest",
    "TokenizerError",
    "UnsupportedArchitecture",
    "VerificationFailed",
    "convert_folder",
    "pull_model",
    "quantize_gguf",
    "resolve_outtype",
    "run_convert",
]
