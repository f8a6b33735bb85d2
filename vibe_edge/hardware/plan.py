"""Turn a machine description and a model's shape into the engine's default configuration.

The plan picks threads, GPU layers, slots, context per slot and KV-cache type, estimates the
memory that takes, and records each choice as a Decision (setting, value, why) for `vibe-edge
doctor`, which formats them (cli/doctor.py). Every value the user set explicitly wins over the
automatic choice. check_fits() refuses a plan that
cannot fit before llama.cpp tries to allocate it (and gets killed or crashes half-way).

Estimates are deliberately a little pessimistic: a plan that leaves 10% unused is better than
one that swaps a laptop to a standstill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from vibe_edge.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CPU_CTX_CAP,
    DEFAULT_CPU_SLOTS,
    DEFAULT_GPU_CTX_CAP,
    DEFAULT_GPU_SLOTS,
    DEFAULT_JETSON_SLOTS,
    DEFAULT_SPEC_BATCH_TOKENS_CPU,
    DEFAULT_SPEC_BATCH_TOKENS_GPU,
    KV_BYTES_PER_ELEMENT,
    MIN_PLANNED_CTX_PER_SLOT,
)
from vibe_edge.errors import PlanError
from vibe_edge.hardware.detect import HardwareInfo
from vibe_edge.modelfile import GGUFFacts

__all__ = [
    "REASONING_CTX",
    "MemoryEstimate",
    "Plan",
    "make_plan",
    "Decision",
    "check_fits",
]

GiB = 1024**3
MiB = 1024**2

# A reasoning model's trace plus answer commonly needs 4k-16k tokens; below this per slot, the
# plan trades KV precision (q8_0) and then concurrency for room to think.
COMFORTABLE_REASONING_CTX = 8192
CTX_GRANULARITY = 256  # llama.cpp pads the KV cache to 256 cells anyway
# VibeThinker was evaluated generating up to 40,960 tokens, more than its base config's
# max_position_embeddings (4096): for reasoning models the plan allows at least this much.
REASONING_CTX = 40960

# CPU / unified memory: use 70% of what is available now, less a reserve, because the rest of
# the system (and the page cache the mmapped weights live in) needs room too.
RAM_FRACTION = 0.70
RAM_RESERVE_BYTES = 256 * MiB
# Discrete GPU: free VRAM less 10% and 300 MiB for the CUDA context and cuBLAS workspace, which
# nvidia-smi's "free" does not yet include.
VRAM_FRACTION = 0.90
VRAM_RESERVE_BYTES = 300 * MiB
PROCESS_OVERHEAD_BYTES = 200 * MiB      # Python, llama.cpp host buffers, tokenizer tables
CUDA_CONTEXT_BYTES = 300 * MiB          # counted in RAM on unified-memory boards
PLENTY_OF_VRAM_BYTES = 8 * GiB          # enough to prefer Q8_0 weights

# The model planned for when no file is given: VibeThinker-1.5B (Qwen2.5-Math-1.5B's shape).
_VIBETHINKER_NAME = "VibeThinker-1.5B"
_VIBETHINKER_WEIGHTS = {"Q4_K_M": 1_120_000_000, "Q8_0": 1_890_000_000}


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_bytes: int
    overhead_bytes: int    # compute buffers, logits, runtime (and CUDA context on unified memory)
    total_bytes: int
    budget_bytes: int
    device: str            # where the budget is: "cpu" (RAM), "cuda" (VRAM), "unified"
    budget_note: str       # how the budget was derived, for messages

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes


@dataclass(frozen=True)
class Decision:
    """One choice of the plan: the setting, the value chosen, and why (set_by_user: the value
    came from a flag, the config file or the environment)."""

    name: str
    value: Any
    reason: str
    set_by_user: bool = False


@dataclass(frozen=True)
class Plan:
    model: str              # what was planned for (name and quant)
    model_quant: str | None
    threads: int
    threads_batch: int
    gpu_layers: int         # 0 CPU only, -1 all layers
    n_slots: int
    ctx_per_slot: int
    kv_type: str
    flash_attn: bool
    batch_size: int
    spec_batch_tokens: int  # speculative drafts only while a step holds fewer tokens
    prefer_quant: str
    memory: MemoryEstimate
    decisions: tuple[Decision, ...]
    warnings: tuple[str, ...]

    @property
    def n_ctx(self) -> int:
        """Total KV cells llama.cpp must allocate (all slots)."""
        return self.n_slots * self.ctx_per_slot

    def decision(self, name: str) -> Decision:
        for d in self.decisions:
            if d.name == name:
                return d
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["decisions"], data["warnings"] = [asdict(d) for d in self.decisions], list(self.warnings)
        data["memory"]["fits"] = self.memory.fits
        return data


@dataclass(frozen=True)
class _Shape:
    """The model facts the plan needs, from a GGUF or assumed for VibeThinker."""

    name: str
    quant: str | None
    n_layer: int
    n_head_kv: int
    head_dim: int
    n_embd: int
    n_vocab: int
    n_ctx_train: int | None
    reasoning: bool
    weights_bytes: int

    def kv_bytes_per_token(self, kv_type: str) -> int:
        return int(self.n_layer * 2 * self.n_head_kv * self.head_dim * KV_BYTES_PER_ELEMENT[kv_type])


def _shape(model: GGUFFacts | None, quant: str) -> _Shape:
    if model is None:
        return _Shape(name=f"{_VIBETHINKER_NAME} ({quant}, assumed)", quant=quant, n_layer=28,
                      n_head_kv=2, head_dim=128, n_embd=1536, n_vocab=151936, n_ctx_train=4096,
                      reasoning=True, weights_bytes=_VIBETHINKER_WEIGHTS[quant])
    return _Shape(name=f"{model.name} ({model.quant or 'unknown quant'})", quant=model.quant,
                  n_layer=model.n_layer, n_head_kv=model.n_head_kv, head_dim=model.head_dim,
                  n_embd=model.n_embd, n_vocab=model.vocab_size or 32000,
                  n_ctx_train=model.n_ctx_train, reasoning=model.has_think_tokens,
                  weights_bytes=model.tensor_data_bytes)


def _overhead(shape: _Shape, device: str, batch_size: int, slots: int) -> int:
    # llama.cpp reserves its compute graph for a full batch with logits for every token: the
    # vocab-sized logits dominate for Qwen's 152k vocabulary (~300 MiB at batch 512).
    compute = batch_size * 4 * (shape.n_vocab + 10 * shape.n_embd)
    logits = slots * shape.n_vocab * 4
    runtime = {"cpu": PROCESS_OVERHEAD_BYTES, "cuda": 0,
               "unified": PROCESS_OVERHEAD_BYTES + CUDA_CONTEXT_BYTES}[device]
    return compute + logits + runtime


def _round_ctx(tokens: float) -> int:
    return max(0, int(tokens) // CTX_GRANULARITY * CTX_GRANULARITY)


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def make_plan(hw: HardwareInfo, model: GGUFFacts | None = None, *, threads: int | None = None,
              gpu_layers: int | None = None, slots: int | None = None,
              ctx_per_slot: int | None = None, kv_type: str | None = None,
              batch_size: int = DEFAULT_BATCH_SIZE) -> Plan:
    """The configuration to run `model` (or VibeThinker-1.5B if None) on `hw`.

    Explicit arguments win; None means choose. The plan never raises for "does not fit": it
    records a warning and check_fits() raises, so `doctor` can still show the plan.
    """
    if kv_type is not None and kv_type not in KV_BYTES_PER_ELEMENT:
        raise PlanError(f"kv_type must be one of {', '.join(KV_BYTES_PER_ELEMENT)}, got {kv_type!r}",
                        param="kv_type")
    decisions: list[Decision] = []
    warnings: list[str] = []

    def decide(name: str, value: Any, reason: str, *, set_by_user: bool = False) -> None:
        decisions.append(Decision(name, value, reason, set_by_user))
    gpu = hw.best_gpu
    discrete = gpu is not None and not hw.unified_memory

    # -- threads: decoding is memory-bound, so one thread per physical core; SMT siblings only
    #    contend for the same caches. Prefill is compute-bound and does gain from them.
    if threads is None:
        threads = hw.physical_cores
        smt = f" ({hw.logical_cores} logical: hyperthreads would contend for the same memory bandwidth)" \
            if hw.logical_cores > hw.physical_cores else ""
        decide("threads", threads, f"one per usable physical core, since token generation is "
                                   f"memory-bound{smt}")
        threads_batch = max(threads, hw.logical_cores)
        decide("threads_batch", threads_batch, "every usable logical core for prompt processing, "
                                               "which is compute-bound")
    else:
        threads_batch = threads
        decide("threads", threads, "set by you", set_by_user=True)
        decide("threads_batch", threads_batch, "same as threads, set by you", set_by_user=True)
        if threads > hw.logical_cores:
            warnings.append(f"{threads} threads on {hw.logical_cores} usable cores will oversubscribe "
                            "the CPU and slow decoding down")

    # -- preferred quantization: a recommendation for `pull`/`convert`; the given file is used.
    plenty = discrete and hw.gpu_offload_supported and gpu.free_bytes >= PLENTY_OF_VRAM_BYTES \
        and gpu_layers != 0
    prefer_quant = "Q8_0" if plenty else "Q4_K_M"
    if plenty:
        why_quant = (f"{gpu.name} has {_gib(gpu.free_bytes)} free, so the larger Q8_0 weights stay "
                     "closest to the original model at a speed cost a GPU barely notices")
    else:
        why_quant = ("generating on a CPU or a small board is limited by memory bandwidth, and "
                     "Q4_K_M reads the fewest bytes per token for a small quality loss")
    shape = _shape(model, prefer_quant)
    decide("prefer_quant", prefer_quant, why_quant
           + (f" (the loaded file is {shape.quant})" if model is not None and shape.quant
              and shape.quant != prefer_quant else ""))

    # -- where the model runs and which memory bounds it.
    device, gpu_layers, budget, budget_note = _placement(hw, shape, gpu_layers, slots, ctx_per_slot,
                                                         kv_type, batch_size, decide, warnings)

    # -- slots, KV type and context per slot: solved together against the budget.
    unified = device == "unified"
    on_gpu = device in ("cuda", "unified")
    default_slots = DEFAULT_JETSON_SLOTS if unified else DEFAULT_GPU_SLOTS if on_gpu else DEFAULT_CPU_SLOTS
    cap = DEFAULT_GPU_CTX_CAP if on_gpu else DEFAULT_CPU_CTX_CAP
    usable, usable_why = _usable_ctx(shape)
    floor = min(MIN_PLANNED_CTX_PER_SLOT, usable)
    comfortable = min(COMFORTABLE_REASONING_CTX if shape.reasoning else floor, usable, cap)

    n_slots = slots if slots is not None else default_slots
    kv = kv_type or "f16"

    def overhead_for(n: int) -> int:
        return _overhead(shape, device, batch_size, n)

    def ctx_that_fits(n: int, kv_t: str) -> int:
        room = budget - shape.weights_bytes - overhead_for(n)
        return _round_ctx(room / (n * shape.kv_bytes_per_token(kv_t))) if room > 0 else 0

    want = ctx_per_slot if ctx_per_slot is not None else comfortable
    kv_note = slot_note = ""
    if kv_type is None and ctx_that_fits(n_slots, "f16") < want:
        if ctx_that_fits(n_slots, "q8_0") > ctx_that_fits(n_slots, "f16"):
            kv = "q8_0"
            kv_note = (f"an f16 cache would leave only {ctx_that_fits(n_slots, 'f16'):,} tokens per "
                       f"slot; q8_0 halves the cache for a negligible quality loss")
    if slots is None and ctx_that_fits(n_slots, kv) < want and n_slots > 1:
        fewer = n_slots
        while fewer > 1 and ctx_that_fits(fewer, kv) < want:
            fewer -= 1
        slot_note = (f"{n_slots} slots would leave fewer than {want:,} tokens each; " + (
            "a reasoning trace needs the room more than a request needs a slot" if shape.reasoning
            else "fewer slots that can hold a request beat more that cannot"))
        n_slots = fewer

    if ctx_per_slot is not None:
        ctx = ctx_per_slot
        ctx_reason, ctx_by_user = "set by you", True
        if ctx > usable:
            warnings.append(f"ctx_per_slot {ctx:,} is beyond the model's usable {usable:,} tokens "
                            f"({usable_why}); output past that point may degrade")
    else:
        ctx = max(floor, _round_ctx(min(cap, usable, ctx_that_fits(n_slots, kv))))
        limits = {cap: f"the default cap on {'GPU' if on_gpu else 'CPU'} ({cap:,})",
                  usable: f"the model's usable context ({usable_why})"}
        bound = min(cap, usable)
        if ctx >= bound:
            why_ctx = f"limited by {limits[bound]}"
        elif ctx_that_fits(n_slots, kv) >= floor:
            why_ctx = f"as much as the {_gib(budget)} budget allows for {n_slots} slots"
        else:
            why_ctx = f"the minimum ({floor:,}); it does not fit the memory budget"
        ctx_reason, ctx_by_user = why_ctx, False
        if shape.reasoning and ctx < COMFORTABLE_REASONING_CTX and ctx < usable \
                and ctx_that_fits(n_slots, kv) >= ctx:
            warnings.append(f"only {ctx:,} tokens per slot: long reasoning traces will be cut off "
                            "(fewer slots, --kv-type q8_0 or more memory give it more room)")

    decide("n_slots", n_slots, (
        "set by you" if slots is not None else slot_note or
        {"unified": "Jetson default: its small GPU gains little from more parallel sequences",
         "cuda": "GPU default: batched decoding on a GPU serves 8 requests at little cost each",
         "cpu": "CPU default: batched decoding on a few cores gains little past 4"}[device]),
           set_by_user=slots is not None)
    decide("kv_type", kv, "set by you" if kv_type is not None else kv_note or
           "full precision, since memory allows it", set_by_user=kv_type is not None)
    decide("ctx_per_slot", ctx, ctx_reason, set_by_user=ctx_by_user)
    decide("flash_attn", True, "llama.cpp needs it for a quantized V cache, and it avoids "
                               "materializing the attention scores for long contexts")
    decide("batch_size", batch_size, "prompt tokens evaluated per step"
           + (" (default)" if batch_size == DEFAULT_BATCH_SIZE else ""))
    on_gpu = device != "cpu" and gpu_layers != 0
    spec_batch_tokens = DEFAULT_SPEC_BATCH_TOKENS_GPU if on_gpu else DEFAULT_SPEC_BATCH_TOKENS_CPU
    decide("spec_batch_tokens", spec_batch_tokens,
           "speculative drafts fill a step up to this many tokens: a GPU step is memory-bound and "
           "costs about the same for 16 tokens as for 1" if on_gpu else
           "speculative drafts fill a step up to this many tokens; within that the engine prices "
           "each draft by the step costs it measures, so drafting backs off when several slots "
           "generate")

    weights = shape.weights_bytes
    kv_bytes = n_slots * ctx * shape.kv_bytes_per_token(kv)
    overhead = overhead_for(n_slots)
    memory = MemoryEstimate(weights_bytes=weights, kv_bytes=kv_bytes, overhead_bytes=overhead,
                            total_bytes=weights + kv_bytes + overhead, budget_bytes=max(0, budget),
                            device=device, budget_note=budget_note)
    if not memory.fits:
        warnings.append(f"does not fit: needs {_gib(memory.total_bytes)} but the budget is "
                        f"{_gib(memory.budget_bytes)} ({budget_note})")
    if model is not None and not model.tested_architecture:
        warnings.append(f"architecture {model.architecture!r} is untested with vibe-edge "
                        "(llama.cpp may still run it)")

    return Plan(model=shape.name, model_quant=shape.quant, threads=threads, threads_batch=threads_batch,
                gpu_layers=gpu_layers, n_slots=n_slots, ctx_per_slot=ctx, kv_type=kv,
                flash_attn=True, batch_size=batch_size, spec_batch_tokens=spec_batch_tokens,
                prefer_quant=prefer_quant, memory=memory,
                decisions=tuple(decisions), warnings=tuple(warnings))


def _usable_ctx(shape: _Shape) -> tuple[int, str]:
    trained = shape.n_ctx_train
    if shape.reasoning:
        if trained is None or trained < REASONING_CTX:
            return REASONING_CTX, (f"a reasoning model: VibeThinker was evaluated generating up to "
                                   f"{REASONING_CTX:,} tokens although its config says "
                                   f"{trained or 'nothing'}")
        return trained, f"trained context {trained:,}"
    if trained is None:
        return DEFAULT_CPU_CTX_CAP, "the file gives no trained context"
    return trained, f"trained context {trained:,}"


def _placement(hw: HardwareInfo, shape: _Shape, gpu_layers: int | None, slots: int | None,
               ctx_per_slot: int | None, kv_type: str | None, batch_size: int,
               decide: Callable[..., None], warnings: list[str]) -> tuple[str, int, int, str]:
    """Decide CPU / discrete GPU / unified memory; return (device, gpu_layers, budget, note)."""
    ram_budget = int(hw.ram_available_bytes * RAM_FRACTION - RAM_RESERVE_BYTES)
    ram_note = (f"{RAM_FRACTION:.0%} of {_gib(hw.ram_available_bytes)} available RAM "
                f"less {RAM_RESERVE_BYTES // MiB} MiB")
    all_layers = gpu_layers is not None and (gpu_layers < 0 or gpu_layers >= shape.n_layer)
    gpu = hw.best_gpu

    def cpu(why: str, layers: int = 0) -> tuple[str, int, int, str]:
        decide("gpu_layers", layers, why, set_by_user=gpu_layers is not None)
        return "cpu", layers, ram_budget, ram_note

    if gpu is None or not hw.gpu_offload_supported:
        if gpu is not None:
            warnings.append(f"{gpu.name} found, but this llama.cpp build cannot offload to it: "
                            "reinstall llama-cpp-python with CUDA (CMAKE_ARGS=-DGGML_CUDA=on)")
        if gpu_layers:
            warnings.append(f"gpu_layers = {gpu_layers} has no effect without GPU offload")
            return cpu("set by you, but there is no usable GPU", gpu_layers)
        if gpu_layers == 0:
            return cpu("set by you")
        return cpu("no GPU this llama.cpp build can use" if gpu is None
                   else "this llama.cpp build is CPU-only")
    if gpu_layers == 0:
        return cpu("set by you (CPU only)")

    if hw.unified_memory:
        budget = int(hw.ram_available_bytes * RAM_FRACTION - RAM_RESERVE_BYTES)
        layers = -1 if gpu_layers is None or all_layers else gpu_layers
        why = ("set by you" if gpu_layers is not None else
               f"all layers on the {hw.jetson_model or 'integrated'} GPU: its memory is the "
               "system RAM, so offloading costs no extra memory")
        decide("gpu_layers", layers, why, set_by_user=gpu_layers is not None)
        return "unified", layers, budget, ram_note + ", shared by CPU and GPU"

    vram_budget = int(gpu.free_bytes * VRAM_FRACTION - VRAM_RESERVE_BYTES)
    vram_note = (f"{VRAM_FRACTION:.0%} of {_gib(gpu.free_bytes)} free on {gpu.name} "
                 f"less {VRAM_RESERVE_BYTES // MiB} MiB for the CUDA context")
    if all_layers:
        decide("gpu_layers", -1, f"set by you (all layers on {gpu.name})", set_by_user=True)
        return "cuda", -1, vram_budget, vram_note
    if gpu_layers is not None:
        decide("gpu_layers", gpu_layers, "set by you (memory checked against RAM, conservatively, "
                                         "as the other layers run on the CPU)", set_by_user=True)
        return "cpu", gpu_layers, ram_budget, ram_note + ", checked as if all layers were on the CPU"

    # The smallest useful configuration: one slot (or the requested ones) at the minimum context.
    n = slots or 1
    ctx = ctx_per_slot or MIN_PLANNED_CTX_PER_SLOT
    kv_min = n * ctx * shape.kv_bytes_per_token(kv_type or "q8_0")
    need = shape.weights_bytes + _overhead(shape, "cuda", batch_size, n) + kv_min
    if need <= vram_budget:
        decide("gpu_layers", -1, f"all {shape.n_layer} layers fit in {gpu.name}'s "
                                 f"{_gib(vram_budget)} usable VRAM")
        return "cuda", -1, vram_budget, vram_note
    per_layer = (shape.weights_bytes / (shape.n_layer + 1)
                 + kv_min / shape.n_layer)
    room = vram_budget - _overhead(shape, "cuda", batch_size, n)
    layers = max(0, min(shape.n_layer, int(room // per_layer))) if room > 0 else 0
    if layers == 0:
        return cpu(f"{gpu.name} has too little free memory ({_gib(gpu.free_bytes)}) for even one layer")
    decide("gpu_layers", layers, f"only {layers} of {shape.n_layer} layers fit in {gpu.name}'s "
                                 f"{_gib(vram_budget)} usable VRAM; the rest run on the CPU")
    return "cpu", layers, ram_budget, ram_note + ", checked as if all layers were on the CPU"


def check_fits(plan: Plan) -> None:
    """Raise PlanError, before anything is loaded, when the plan needs more memory than budgeted."""
    mem = plan.memory
    if mem.fits:
        return
    where = {"cpu": "RAM", "cuda": "GPU memory", "unified": "shared memory"}.get(mem.device, mem.device)
    slots = f"{plan.n_slots} slot{'s' if plan.n_slots != 1 else ''}"
    message = (f"{plan.model} does not fit in this machine's {where}: weights {_gib(mem.weights_bytes)} "
               f"+ KV cache {_gib(mem.kv_bytes)} ({slots} x {plan.ctx_per_slot:,} tokens, "
               f"{plan.kv_type}) + runtime {_gib(mem.overhead_bytes)} = {_gib(mem.total_bytes)}, "
               f"but the budget is {_gib(mem.budget_bytes)} ({mem.budget_note})")
    todo = []
    if mem.weights_bytes + mem.overhead_bytes >= mem.budget_bytes:
        smaller = ("a smaller quantization (Q4_K_M)" if not _is_small_quant(plan.model_quant)
                   else "a smaller model")
        todo.append(f"the weights and runtime alone need {_gib(mem.weights_bytes + mem.overhead_bytes)}: "
                    f"use {smaller} or a machine with more free memory")
    else:
        if plan.n_slots > 1:
            todo.append("fewer slots (--slots 1)")
        if plan.ctx_per_slot > MIN_PLANNED_CTX_PER_SLOT:
            todo.append("a smaller context (--ctx 4096)")
        if plan.kv_type == "f16":
            todo.append("a quantized KV cache (--kv-type q8_0)")
        if not _is_small_quant(plan.model_quant):
            todo.append("a smaller quantization (Q4_K_M)")
        if plan.batch_size > 256:
            todo.append("a smaller prompt batch (--batch-size 256)")
    todo.append("close other programs to free memory")
    raise PlanError(message, hint="; ".join(todo))


def _is_small_quant(quant: str | None) -> bool:
    return (quant or "").upper().startswith(("Q4", "Q3", "Q2", "IQ", "TQ"))
