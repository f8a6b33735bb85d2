"""Hardware detection (on fake /proc trees and this machine) and plans for faked machines."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vibe_edge.hardware.detect as detect_mod
from vibe_edge.defaults import (
    DEFAULT_CPU_CTX_CAP,
    DEFAULT_GPU_CTX_CAP,
    DEFAULT_SPEC_BATCH_TOKENS_CPU,
    DEFAULT_SPEC_BATCH_TOKENS_GPU,
    MIN_PLANNED_CTX_PER_SLOT,
)
from vibe_edge.errors import PlanError
from vibe_edge.hardware import (
    GpuInfo,
    HardwareInfo,
    Plan,
    check_fits,
    detect_hardware,
    make_plan,
)
from vibe_edge.cli.doctor import decision_line, format_plan
from vibe_edge.modelfile import GGUFFacts

GiB = 1024**3
KIB_28 = 28 * 1024  # VibeThinker's f16 KV bytes per token


def machine(**changes) -> HardwareInfo:
    base = HardwareInfo(
        os="Linux", machine="x86_64", cpu_model="Test CPU", physical_cores=2, logical_cores=4,
        cpu_features=frozenset({"avx", "avx2", "fma", "f16c"}), ram_total_bytes=8 * GiB,
        ram_available_bytes=5 * GiB, gpu_offload_supported=False)
    return replace(base, **changes)


LAPTOP = machine()
SMALL_RAM = machine(ram_total_bytes=4 * GiB, ram_available_bytes=3 * GiB)
T4 = machine(physical_cores=4, logical_cores=8, ram_total_bytes=16 * GiB, ram_available_bytes=14 * GiB,
             gpu_offload_supported=True,
             gpus=(GpuInfo("Tesla T4", 15 * GiB, int(14.6 * GiB), "7.5"),))
ORIN_NANO = machine(machine="aarch64", cpu_model="ARMv8 Processor rev 1 (v8l)", physical_cores=6,
                    logical_cores=6, cpu_features=frozenset({"neon", "dotprod"}),
                    ram_total_bytes=int(7.4 * GiB), ram_available_bytes=5 * GiB,
                    gpu_offload_supported=True,
                    gpus=(GpuInfo("NVIDIA Jetson Orin Nano (integrated)", int(7.4 * GiB), 5 * GiB, "8.7"),),
                    jetson_model="NVIDIA Jetson Orin Nano Developer Kit", unified_memory=True)
TINY = machine(ram_total_bytes=1 * GiB, ram_available_bytes=int(0.7 * GiB))


def facts(**changes) -> GGUFFacts:
    base = GGUFFacts(
        path=Path("/m/vibethinker-q4_k_m.gguf"), size_bytes=1_120_000_000, version=3,
        architecture="qwen2", name="VibeThinker-1.5B", file_type=15, quant="Q4_K_M", n_layer=28,
        n_embd=1536, n_head=12, n_head_kv=2, head_dim=128, n_ctx_train=4096, vocab_size=151936,
        chat_template="{{ x }}", has_think_tokens=True, n_tensors=338, n_params=1_540_000_000,
        tensor_data_bytes=1_100_000_000)
    return replace(base, **changes)


def assert_sane(plan: Plan) -> None:
    assert plan.threads >= 1 and plan.threads_batch >= plan.threads
    assert plan.n_slots >= 1
    assert plan.ctx_per_slot % 256 == 0
    assert plan.kv_type in ("f16", "q8_0", "q4_0")
    m = plan.memory
    assert m.total_bytes == m.weights_bytes + m.kv_bytes + m.overhead_bytes
    assert len(plan.decisions) >= 8 and len({d.name for d in plan.decisions}) == len(plan.decisions)
    json.dumps(plan.to_dict())


# -- plans on faked machines -------------------------------------------------------------------------

def test_two_core_laptop() -> None:
    plan = make_plan(LAPTOP, None)
    assert_sane(plan)
    assert plan.threads == 2          # physical cores, not the 4 hyperthreads
    assert plan.threads_batch == 4
    assert plan.gpu_layers == 0
    assert plan.n_slots == 4
    assert plan.kv_type == "f16"
    assert 8192 <= plan.ctx_per_slot <= DEFAULT_CPU_CTX_CAP
    assert plan.prefer_quant == "Q4_K_M"
    assert plan.memory.device == "cpu" and plan.memory.fits
    assert plan.memory.kv_bytes == 4 * plan.ctx_per_slot * KIB_28
    assert plan.flash_attn
    assert plan.spec_batch_tokens == DEFAULT_SPEC_BATCH_TOKENS_CPU  # the cap; step costs decide within it
    check_fits(plan)
    assert not plan.warnings


def test_small_ram_trades_kv_precision_then_slots_and_still_fits() -> None:
    plan = make_plan(SMALL_RAM, None)
    assert_sane(plan)
    assert plan.kv_type == "q8_0"
    assert plan.n_slots < 4
    assert plan.ctx_per_slot >= MIN_PLANNED_CTX_PER_SLOT
    assert plan.memory.fits
    check_fits(plan)
    kv = plan.decision("kv_type")
    assert kv.value == "q8_0" and "f16" in kv.reason and not kv.set_by_user


def test_smaller_ram_fails_clearly() -> None:
    plan = make_plan(machine(ram_total_bytes=4 * GiB, ram_available_bytes=2 * GiB), None)
    assert not plan.memory.fits
    assert any("does not fit" in w for w in plan.warnings)
    with pytest.raises(PlanError):
        check_fits(plan)


def test_t4_offloads_everything_with_eight_slots() -> None:
    plan = make_plan(T4, None)
    assert_sane(plan)
    assert plan.gpu_layers == -1
    assert plan.prefer_quant == "Q8_0"
    assert plan.n_slots == 8
    assert plan.ctx_per_slot == DEFAULT_GPU_CTX_CAP
    assert plan.memory.device == "cuda"
    assert plan.spec_batch_tokens == DEFAULT_SPEC_BATCH_TOKENS_GPU
    assert plan.memory.budget_bytes < T4.gpus[0].free_bytes  # a margin is kept
    assert plan.memory.weights_bytes > 1.5e9                   # planned for Q8_0 weights
    check_fits(plan)


def test_orin_nano_unified_memory() -> None:
    plan = make_plan(ORIN_NANO, None)
    assert_sane(plan)
    assert plan.gpu_layers == -1
    assert plan.memory.device == "unified"
    assert plan.n_slots == 4
    assert MIN_PLANNED_CTX_PER_SLOT <= plan.ctx_per_slot <= 16384
    assert plan.prefer_quant == "Q4_K_M"
    assert plan.threads == 6
    # The budget comes from RAM, not from a separate VRAM pool.
    assert plan.memory.budget_bytes < ORIN_NANO.ram_available_bytes
    check_fits(plan)


def test_one_gib_machine_gets_a_helpful_plan_error() -> None:
    plan = make_plan(TINY, facts())
    with pytest.raises(PlanError) as err:
        check_fits(plan)
    e = err.value
    assert "does not fit" in e.message and "GiB" in e.message and "budget" in e.message
    assert "VibeThinker" in e.message
    assert e.hint and "more free memory" in e.hint
    assert e.code == "does_not_fit"


def test_too_much_context_error_suggests_what_to_change() -> None:
    plan = make_plan(LAPTOP, facts(), slots=4, ctx_per_slot=40960, kv_type="f16")
    with pytest.raises(PlanError) as err:
        check_fits(plan)
    hint = err.value.hint
    assert "--slots" in hint and "--ctx" in hint and "--kv-type q8_0" in hint


def test_explicit_values_win_and_say_so() -> None:
    plan = make_plan(T4, None, threads=1, gpu_layers=0, slots=2, ctx_per_slot=4096, kv_type="q4_0",
                     batch_size=256)
    assert (plan.threads, plan.threads_batch, plan.gpu_layers) == (1, 1, 0)
    assert (plan.n_slots, plan.ctx_per_slot, plan.kv_type, plan.batch_size) == (2, 4096, "q4_0", 256)
    assert plan.memory.device == "cpu"
    for key in ("threads", "gpu_layers", "n_slots", "ctx_per_slot", "kv_type"):
        decision = plan.decision(key)
        assert decision.set_by_user and "set by you" in decision.reason
    assert not plan.decision("prefer_quant").set_by_user
    assert plan.prefer_quant == "Q4_K_M"  # the GPU is not used


def test_explicit_kv_type_is_not_changed_even_when_tight() -> None:
    plan = make_plan(SMALL_RAM, None, kv_type="f16")
    assert plan.kv_type == "f16"


def test_gpu_without_offload_support_runs_on_cpu_with_a_warning() -> None:
    plan = make_plan(replace(T4, gpu_offload_supported=False), None)
    assert plan.gpu_layers == 0 and plan.memory.device == "cpu"
    assert any("CUDA" in w for w in plan.warnings)


def test_small_gpu_gets_partial_offload() -> None:
    hw = machine(gpu_offload_supported=True, gpus=(GpuInfo("MX150", 2 * GiB, int(1.2 * GiB), "6.1"),))
    plan = make_plan(hw, None)
    assert 0 < plan.gpu_layers < 28
    assert plan.memory.device == "cpu"  # checked against RAM, conservatively


def test_reasoning_model_may_exceed_its_config_context() -> None:
    plan = make_plan(T4, facts(n_ctx_train=4096))
    assert plan.ctx_per_slot > 4096
    assert plan.memory.weights_bytes == 1_100_000_000  # the file's real size, not the assumption


def test_plain_model_is_capped_at_its_trained_context(tmp_path: Path) -> None:
    plan = make_plan(T4, facts(has_think_tokens=False, n_ctx_train=8192))
    assert plan.ctx_per_slot == 8192
    assert "trained context 8,192" in plan.decision("ctx_per_slot").reason


def test_untested_architecture_warns() -> None:
    plan = make_plan(LAPTOP, facts(architecture="gemma2"))
    assert any("gemma2" in w for w in plan.warnings)


def test_bad_kv_type_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="kv_type"):
        make_plan(LAPTOP, None, kv_type="f32")


def test_format_plan_lists_hardware_and_every_reason() -> None:
    plan = make_plan(ORIN_NANO, None)
    text = format_plan(plan, ORIN_NANO)
    assert "Jetson Orin Nano" in text and "6 physical" in text and "neon" in text
    for decision in plan.decisions:
        assert decision_line(decision) in text
    assert f"ctx_per_slot = {plan.ctx_per_slot:,}: " in text and "flash_attn = on: " in text
    assert "Memory (unified)" in text


@settings(max_examples=150, deadline=None)
@given(cores=st.integers(1, 64), smt=st.sampled_from([1, 2]), avail_gib=st.floats(0.2, 256),
       gpu_free_gib=st.one_of(st.none(), st.floats(0.1, 80)), unified=st.booleans(),
       offload=st.booleans(), slots=st.one_of(st.none(), st.integers(1, 16)),
       ctx=st.one_of(st.none(), st.integers(256, 65536)))
def test_any_machine_gets_a_consistent_plan(cores, smt, avail_gib, gpu_free_gib, unified, offload,
                                            slots, ctx) -> None:
    gpus = () if gpu_free_gib is None else (
        GpuInfo("GPU", int(gpu_free_gib * GiB) + GiB, int(gpu_free_gib * GiB), "8.6"),)
    hw = machine(physical_cores=cores, logical_cores=cores * smt, ram_total_bytes=int(avail_gib * GiB) + GiB,
                 ram_available_bytes=int(avail_gib * GiB), gpus=gpus, gpu_offload_supported=offload,
                 unified_memory=unified and bool(gpus))
    plan = make_plan(hw, None, slots=slots, ctx_per_slot=ctx)
    assert plan.threads == cores and plan.threads_batch == cores * smt
    if slots is not None:
        assert plan.n_slots == slots
    if ctx is not None:
        assert plan.ctx_per_slot == ctx
    else:
        assert MIN_PLANNED_CTX_PER_SLOT <= plan.ctx_per_slot <= DEFAULT_GPU_CTX_CAP
        assert plan.ctx_per_slot % 256 == 0
    if plan.memory.fits:
        check_fits(plan)
    else:
        with pytest.raises(PlanError):
            check_fits(plan)


# -- HardwareInfo serialization and detection ----------------------------------------------------------

def test_hardware_info_json_round_trip() -> None:
    for hw in (LAPTOP, T4, ORIN_NANO):
        assert HardwareInfo.from_dict(json.loads(json.dumps(hw.to_dict()))) == hw


def test_detect_on_this_machine_is_sane() -> None:
    hw = detect_hardware()
    assert hw.physical_cores >= 1 and hw.logical_cores >= hw.physical_cores
    assert hw.ram_total_bytes > 0 and 0 < hw.ram_available_bytes <= hw.ram_total_bytes
    assert hw.machine
    assert isinstance(hw.gpu_offload_supported, bool)
    assert HardwareInfo.from_dict(hw.to_dict()) == hw
    assert make_plan(hw, None).threads == hw.physical_cores


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


X86_CPUINFO = "".join(
    f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
    f"physical id\t: 0\ncore id\t\t: {cpu % 2}\nflags\t\t: fpu sse2 avx avx2 fma f16c avx512f ht\n\n"
    for cpu in range(4))  # 2 cores x 2 hyperthreads
ARM_CPUINFO = "".join(
    f"processor\t: {cpu}\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp\n"
    f"CPU implementer\t: 0x41\nCPU part\t: 0xd42\n\n" for cpu in range(6))


def test_detect_reads_cpuinfo_meminfo_and_cgroup_limits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(detect_mod, "_allowed_cpus", lambda: {0, 1, 2, 3})
    _write(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    _write(tmp_path, "proc/meminfo", "MemTotal:       16384000 kB\nMemFree:  1000 kB\n"
                                     "MemAvailable:   12000000 kB\n")
    _write(tmp_path, "sys/fs/cgroup/memory.max", str(4 * GiB) + "\n")
    _write(tmp_path, "sys/fs/cgroup/memory.current", str(1 * GiB) + "\n")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "300000 100000\n")
    hw = detect_hardware(gpu_offload_supported=False, root=tmp_path, run=lambda argv: None)
    assert hw.cpu_model.startswith("Intel(R) Xeon")
    assert hw.physical_cores == 2 and hw.logical_cores == 3  # cgroup quota of 3 CPUs
    assert hw.cpu_features == frozenset({"avx", "avx2", "fma", "f16c", "avx512f"})
    assert hw.ram_total_bytes == 4 * GiB                    # the container limit, not the host
    assert hw.ram_available_bytes == 3 * GiB                # limit minus usage
    assert hw.gpus == () and hw.jetson_model is None and not hw.unified_memory
    assert any("container" in n for n in hw.notes)


def test_detect_parses_nvidia_smi(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(detect_mod, "_allowed_cpus", lambda: {0, 1, 2, 3})
    _write(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    _write(tmp_path, "proc/meminfo", "MemTotal: 32000000 kB\nMemAvailable: 30000000 kB\n")
    calls = []

    def fake_smi(argv):
        calls.append(argv)
        return "Tesla T4, 15360, 14930, 7.5\nNVIDIA A10G, 23028, [N/A], [N/A]\n"

    hw = detect_hardware(gpu_offload_supported=True, root=tmp_path, run=fake_smi)
    assert calls and calls[0][0] == "nvidia-smi"
    assert hw.gpus[0] == GpuInfo("Tesla T4", 15360 * 1024**2, 14930 * 1024**2, "7.5")
    assert hw.gpus[1].free_bytes == 0 and hw.gpus[1].compute_capability is None
    assert hw.best_gpu.name == "Tesla T4"
    assert hw.physical_cores == 2 and hw.logical_cores == 4


def test_detect_recognises_a_jetson(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(detect_mod, "_allowed_cpus", lambda: set(range(6)))
    monkeypatch.setattr(detect_mod.psutil, "cpu_count", lambda logical=True: 6)
    _write(tmp_path, "proc/cpuinfo", ARM_CPUINFO)
    _write(tmp_path, "proc/meminfo", "MemTotal: 7800000 kB\nMemAvailable: 5000000 kB\n")
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    hw = detect_hardware(gpu_offload_supported=True, root=tmp_path, run=lambda argv: None)
    assert hw.jetson_model == "NVIDIA Jetson Orin Nano Developer Kit"
    assert hw.unified_memory
    assert hw.cpu_features >= {"neon", "dotprod"}
    assert hw.physical_cores == 6
    (gpu,) = hw.gpus
    assert gpu.compute_capability == "8.7" and gpu.free_bytes == hw.ram_available_bytes
    assert make_plan(hw, None).memory.device == "unified"


def test_detect_survives_an_empty_root(tmp_path: Path) -> None:
    hw = detect_hardware(gpu_offload_supported=False, root=tmp_path, run=lambda argv: None)
    assert hw.physical_cores >= 1 and hw.ram_total_bytes > 0  # psutil fallbacks
