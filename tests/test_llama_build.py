"""The portable llama.cpp build: options chosen from recorded /proc/cpuinfo texts, the wheel
cache key, the self-check's crash detection, and doctor's build-versus-CPU line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vibe_edge.hardware import llama_build as lb

REPO = Path(__file__).resolve().parents[1]
CPUINFO = Path(__file__).parent / "data" / "cpuinfo"


def flags(name: str) -> frozenset[str]:
    return lb.parse_cpu_flags((CPUINFO / f"{name}.txt").read_text())


def options(choice: lb.BuildChoice) -> dict[str, str]:
    return dict(a.removeprefix("-D").split("=", 1) for a in choice.options)


# -- choosing options ---------------------------------------------------------------------------

def test_amd_zen2_gets_avx2_and_nothing_it_lacks():
    opts = options(lb.choose_build(flags("amd-zen2-epyc"), "x86_64"))
    assert opts["GGML_NATIVE"] == "OFF"
    for on in ("GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2", "GGML_SSE42"):
        assert opts[on] == "ON", on
    for off in ("GGML_AVX512", "GGML_AVX_VNNI", "GGML_AVX512_VNNI", *lb.AMX_OPTIONS):
        assert opts[off] == "OFF", off


def test_sapphire_rapids_gets_avx512_but_never_amx():
    choice = lb.choose_build(flags("intel-sapphire-rapids-amx"), "x86_64")
    opts = options(choice)
    for on in ("GGML_AVX2", "GGML_AVX_VNNI", "GGML_AVX512", "GGML_AVX512_VBMI",
               "GGML_AVX512_VNNI", "GGML_AVX512_BF16"):
        assert opts[on] == "ON", on
    # Every AMX option is written out as OFF: under GGML_NATIVE the compiler would turn it on.
    assert all(opts[o] == "OFF" for o in lb.AMX_OPTIONS)
    assert any("26954" in r for r in choice.reasons)  # says why, with the upstream reference


def test_avx2_only_intel_has_no_avx512():
    opts = options(lb.choose_build(flags("intel-haswell-avx2"), "x86_64"))
    assert opts["GGML_AVX2"] == "ON" and opts["GGML_FMA"] == "ON"
    assert opts["GGML_AVX512"] == "OFF" and opts["GGML_AVX_VNNI"] == "OFF"


@pytest.mark.parametrize("board", ["jetson-orin", "raspberry-pi-5"])
def test_arm_boards_get_dotprod_and_fp16(board):
    opts = options(lb.choose_build(flags(board), "aarch64"))
    assert opts["GGML_NATIVE"] == "OFF"
    assert opts["GGML_CPU_ARM_ARCH"] == "armv8.2-a+dotprod+fp16"


def test_plain_armv8_without_extensions():
    pi4 = lb.parse_cpu_flags("Features\t: fp asimd evtstrm crc32 cpuid\n")
    assert options(lb.choose_build(pi4, "aarch64"))["GGML_CPU_ARM_ARCH"] == "armv8-a"


def test_a_users_cuda_args_are_added_after_ours_so_theirs_win():
    user = "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=87 -DGGML_AVX512=ON"
    choice = lb.choose_build(flags("jetson-orin"), "aarch64", user_cmake_args=user)
    assert choice.cuda
    args = choice.cmake_args.split()
    assert args[-3:] == user.split()
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in args
    t4 = lb.choose_build(flags("intel-haswell-avx2"), "x86_64",
                         user_cmake_args="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=75")
    assert t4.cuda and "-DGGML_AVX2=ON" in t4.cmake_args


def test_conservative_set_is_avx2_fma_f16c_only():
    opts = options(lb.choose_build(flags("intel-sapphire-rapids-amx"), "x86_64", mode="conservative"))
    on = {k for k, v in opts.items() if v == "ON"}
    assert on == {"GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C"}
    arm = options(lb.choose_build(flags("jetson-orin"), "aarch64", mode="conservative"))
    assert arm["GGML_CPU_ARM_ARCH"] == "armv8-a"


def test_native_mode_and_unreadable_flags_leave_llama_cpp_defaults():
    assert lb.choose_build(flags("amd-zen2-epyc"), "x86_64", mode="native").options == ()
    assert lb.choose_build(frozenset(), "x86_64").options == ()
    with pytest.raises(ValueError, match="auto, conservative, native"):
        lb.choose_build(flags("amd-zen2-epyc"), "x86_64", mode="fastest")


def test_cache_key_changes_with_cpu_options_and_python():
    zen = lb.choose_build(flags("amd-zen2-epyc"), "x86_64")
    key = lb.cache_key(zen, flags("amd-zen2-epyc"), "cp311")
    assert key == lb.cache_key(zen, flags("amd-zen2-epyc"), "cp311")  # stable
    spr = lb.choose_build(flags("intel-sapphire-rapids-amx"), "x86_64")
    cuda = lb.choose_build(flags("amd-zen2-epyc"), "x86_64", user_cmake_args="-DGGML_CUDA=on")
    others = {lb.cache_key(spr, flags("intel-sapphire-rapids-amx"), "cp311"),
              lb.cache_key(cuda, flags("amd-zen2-epyc"), "cp311"),
              lb.cache_key(zen, flags("amd-zen2-epyc"), "cp310"),
              lb.cache_key(zen, flags("amd-zen2-epyc") | {"avx512f"}, "cp311")}
    assert key not in others and len(others) == 4
    assert key.startswith(lb.LLAMA_CPP_PYTHON_VERSION)


def test_pinned_version_matches_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    assert f'"llama-cpp-python=={lb.LLAMA_CPP_PYTHON_VERSION}"' in text


# -- the wheel cache (scripts/build_llama.py) ---------------------------------------------------

def _build_script():
    spec = importlib.util.spec_from_file_location("build_llama_under_test",
                                                  REPO / "scripts" / "build_llama.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_second_install_reuses_the_wheel_and_another_key_rebuilds(tmp_path):
    script = _build_script()
    builds: list[str] = []

    def fake_pip(choice, out: Path, log: Path) -> None:  # stands in for the 20-minute compile
        builds.append(choice.cmake_args)
        (out / f"llama_cpp_python-{lb.LLAMA_CPP_PYTHON_VERSION}-cp311-cp311-linux_x86_64.whl").write_bytes(b"w")

    zen = lb.choose_build(flags("amd-zen2-epyc"), "x86_64")
    key = lb.cache_key(zen, flags("amd-zen2-epyc"), "cp311")
    first = script.ensure_wheel(zen, key, tmp_path, build=fake_pip)
    again = script.ensure_wheel(zen, key, tmp_path, build=fake_pip)
    assert first == again and len(builds) == 1
    assert json.loads((first.parent / "build.json").read_text())["key"] == key
    conservative = lb.choose_build(flags("amd-zen2-epyc"), "x86_64", mode="conservative")
    script.ensure_wheel(conservative, lb.cache_key(conservative, flags("amd-zen2-epyc"), "cp311"),
                        tmp_path, build=fake_pip)
    assert len(builds) == 2


def test_a_failed_build_leaves_no_entry_under_the_key(tmp_path):
    script = _build_script()

    def broken(choice, out: Path, log: Path) -> None:
        (out / "half.o").write_bytes(b"")
        raise SystemExit("compiler died")

    zen = lb.choose_build(flags("amd-zen2-epyc"), "x86_64")
    with pytest.raises(SystemExit):
        script.ensure_wheel(zen, "k1", tmp_path, build=broken)
    assert script.cached_wheel("k1", tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == []


# -- the self-check -----------------------------------------------------------------------------

def test_a_check_that_dies_by_sigill_is_a_result_not_the_end():
    result = lb.run_self_check([sys.executable, "-c",
                                "import os, signal; print('loading'); os.kill(os.getpid(), signal.SIGILL)"])
    assert not result.ok and result.signal_name == "SIGILL"
    assert "SIGILL" in result.describe() and "loading" in result.output


def test_a_check_through_a_shell_reports_the_signal_too():
    result = lb.run_self_check(["sh", "-c", "kill -ILL $$"])
    assert result.signal_name == "SIGILL"
    shell_style = lb.run_self_check(["sh", "-c", "exit 132"])
    assert shell_style.signal_name == "SIGILL"


def test_a_check_that_hangs_times_out():
    result = lb.run_self_check([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert not result.ok and result.returncode is None and "timed out" in result.describe()


def test_the_real_self_check_passes_on_this_build(demo_model):
    done = subprocess.run([sys.executable, "-m", "vibe_edge.engine.selfcheck", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and all(n >= 1 for n in report["tokens"])
    assert "CPU" in report["system_info"] or "=" in report["system_info"]


# -- the installed build against the CPU ------------------------------------------------------

SPR_SYSTEM_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | "
                   "FMA = 1 | BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | "
                   "AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")


def test_a_wheel_from_an_avx512_machine_is_an_error_on_zen2():
    check = lb.check_build(lb.parse_system_info(SPR_SYSTEM_INFO), flags("amd-zen2-epyc"))
    assert check.status == "error"
    assert "AVX512" in check.missing and "AMX_INT8" in check.missing
    assert "lacks" in check.message() and "install.sh" in check.message()


def test_amx_active_on_its_own_cpu_is_a_warning():
    check = lb.check_build(lb.parse_system_info(SPR_SYSTEM_INFO), flags("intel-sapphire-rapids-amx"))
    assert check.missing == () and check.amx_active and check.status == "warning"


def test_a_matching_build_is_ok():
    info = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 0 |"
    check = lb.check_build(lb.parse_system_info(info), flags("amd-zen2-epyc"))
    assert check.status == "ok" and "AVX512" not in check.compiled


def _this_build_uses_avx2() -> bool:
    from vibe_edge.engine.selfcheck import build_info

    return "AVX2 = 1" in build_info()


def test_doctor_shows_the_build_and_flags_a_cpu_that_lacks_it(tmp_path):
    if not _this_build_uses_avx2():
        pytest.skip("this llama.cpp build does not use AVX2")
    old_cpu = tmp_path / "cpuinfo"
    old_cpu.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 pni ssse3 sse4_1 sse4_2 popcnt\n")
    cmd = [sys.executable, "-m", "vibe_edge", "doctor", "--model", "demo"]
    here = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert here.returncode == 0, here.stderr
    build = json.loads(here.stdout)["build"]
    assert build["status"] in ("ok", "warning") and "AVX2" in build["compiled"]
    there = subprocess.run(cmd + ["--cpuinfo", str(old_cpu)], capture_output=True, text=True,
                           timeout=120)
    assert there.returncode == 1
    assert "error:" in there.stdout and "AVX2" in there.stdout and "lacks" in there.stdout


# -- Python 3.10: no tomllib ------------------------------------------------------------------

def test_every_module_imports_without_tomllib():
    """On Python 3.10 there is no tomllib; nothing may import it unguarded (vibe-edge chat
    once did). Block it and import every module of the package."""
    code = r"""
import importlib, pkgutil, sys
class NoTomllib:
    def find_spec(self, name, path=None, target=None):
        if name == "tomllib":
            raise ModuleNotFoundError("No module named 'tomllib'", name="tomllib")
        return None
sys.meta_path.insert(0, NoTomllib())
import vibe_edge, convert
failed = []
for pkg in (vibe_edge, convert):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if exc.name == "tomllib":
                failed.append(info.name)
print("FAILED:" + ",".join(failed))
from vibe_edge.tui.config import load_tui_config
from vibe_edge.settings import load_settings
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "FAILED:\n" in done.stdout or done.stdout.strip().endswith("FAILED:"), done.stdout
