"""What machine this is, and how to run the model on it.

detect_hardware() describes the machine; make_plan() turns that and a model's shape into the
engine's defaults (threads, GPU layers, slots, context, KV type), each with its reason;
check_fits() refuses a plan that cannot fit before anything is loaded.
"""

from vibe_edge.hardware.build_status import llama_build_status
from vibe_edge.hardware.detect import CPU_FEATURES, GpuInfo, HardwareInfo, detect_hardware
from vibe_edge.hardware.plan import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CPU_CTX_CAP,
    DEFAULT_CPU_SLOTS,
    DEFAULT_GPU_CTX_CAP,
    DEFAULT_GPU_SLOTS,
    DEFAULT_JETSON_SLOTS,
    MIN_CTX_PER_SLOT,
    REASONING_CTX,
    MemoryEstimate,
    Plan,
    check_fits,
    format_plan,
    make_plan,
)

__all__ = [
    "CPU_FEATURES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CPU_CTX_CAP",
    "DEFAULT_CPU_SLOTS",
    "DEFAULT_GPU_CTX_CAP",
    "DEFAULT_GPU_SLOTS",
    "DEFAULT_JETSON_SLOTS",
    "MIN_CTX_PER_SLOT",
    "REASONING_CTX",
    "GpuInfo",
    "HardwareInfo",
    "MemoryEstimate",
    "Plan",
    "check_fits",
    "detect_hardware",
    "format_plan",
    "llama_build_status",
    "make_plan",
]
