"""What machine this is, and how to run the model on it.

detect_hardware() describes the machine; make_plan() turns that and a model's shape into the
engine's defaults (threads, GPU layers, slots, context, KV type), each a Decision with its
reason; check_fits() refuses a plan that cannot fit before anything is loaded. Formatting is
the CLI's (cli/doctor.py).
"""

from vibe_edge.hardware.build_status import llama_build_status
from vibe_edge.hardware.detect import CPU_FEATURES, GpuInfo, HardwareInfo, detect_hardware
from vibe_edge.hardware.plan import (
    REASONING_CTX,
    Decision,
    MemoryEstimate,
    Plan,
    check_fits,
    make_plan,
)

__all__ = [
    "CPU_FEATURES",
    "REASONING_CTX",
    "Decision",
    "GpuInfo",
    "HardwareInfo",
    "MemoryEstimate",
    "Plan",
    "check_fits",
    "detect_hardware",
    "llama_build_status",
    "make_plan",
]
