#!/usr/bin/env python3
"""Build llama-cpp-python for this machine, cache the wheel, install it, and prove it runs.

    python scripts/build_llama.py install   # choose options, build once per key, install
    python scripts/build_llama.py check     # self-check; on failure rebuild conservatively once
    python scripts/build_llama.py show      # print the choice and the cache key, build nothing

Run it with the virtual environment's Python (scripts/install.sh does): the wheel is installed
into the interpreter that runs this script. Stdlib only: nothing is installed yet when it runs.

The wheel cache lives in .cache/llama-wheels/ (or $VIBE_EDGE_WHEEL_CACHE), one folder per key
(llama-cpp-python version, build options, the CPU's flags, Python): a later install on the
same machine with the same options takes seconds, and any other CPU or option set builds anew.
pip's own wheel cache is never used for llama-cpp-python: it is keyed by the package alone, so
it would hand a wheel built for another CPU (or without CUDA) to this one.

Settings, from the environment:
    VIBE_EDGE_LLAMA_BUILD   auto (default) | conservative | native (llama.cpp's -march=native)
    CMAKE_ARGS              your own llama.cpp options (CUDA for a T4 or a Jetson); appended
                            after vibe-edge's, so where both set an option, yours wins
    VIBE_EDGE_WHEEL_CACHE   where built wheels are kept
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / ".cache" / "llama-wheels"
# Which build this environment holds, for `check` and for `vibe-edge doctor`.
RECORD_NAME = "vibe-edge-llama-build.json"


def _load_build_module():
    """vibe_edge/hardware/llama_build.py, by path: the package's dependencies are not installed."""
    path = REPO / "vibe_edge" / "hardware" / "llama_build.py"
    spec = importlib.util.spec_from_file_location("_vibe_edge_llama_build", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


lb = _load_build_module()


def say(message: str) -> None:
    print(f"[llama.cpp build] {message}", flush=True)


def python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def cache_dir() -> Path:
    return Path(os.environ.get("VIBE_EDGE_WHEEL_CACHE") or DEFAULT_CACHE)


def record_path() -> Path:
    return Path(sys.prefix) / RECORD_NAME


def current_choice(mode: str | None = None):
    mode = mode or os.environ.get("VIBE_EDGE_LLAMA_BUILD") or lb.DEFAULT_BUILD_MODE
    flags = lb.read_cpu_flags()
    choice = lb.choose_build(flags, lb.this_machine(), mode=mode,
                             user_cmake_args=os.environ.get("CMAKE_ARGS", ""))
    return choice, lb.cache_key(choice, flags, python_tag())


# -- the cache ----------------------------------------------------------------------------------

def cached_wheel(key: str, root: Path) -> Path | None:
    folder = root / key
    wheels = sorted(folder.glob("llama_cpp_python-*.whl")) if folder.is_dir() else []
    return wheels[0] if wheels and (folder / "build.json").is_file() else None


def ensure_wheel(choice, key: str, root: Path,
                 build: Callable[[object, Path, Path], None] | None = None) -> Path:
    """The cached wheel for this key, building it first when there is none."""
    found = cached_wheel(key, root)
    if found is not None:
        say(f"reusing the wheel built earlier for this machine: {found}")
        return found
    build = build or pip_build
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{key}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    log = root / f"{key}.log"
    try:
        build(choice, partial, log)
        wheels = list(partial.glob("llama_cpp_python-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"the build left {len(wheels)} wheels in {partial}, expected one")
        (partial / "build.json").write_text(json.dumps(
            {**choice.to_dict(), "key": key, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            indent=2))
        final = root / key
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)  # the key's folder appears complete or not at all
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final / wheels[0].name


def pip_build(choice, out: Path, log: Path) -> None:
    version = lb.LLAMA_CPP_PYTHON_VERSION
    say(f"building llama-cpp-python {version} from source ({choice.describe()})")
    say(f"this takes 10-25 minutes on 2 cores, once per machine and option set; log: {log}")
    env = dict(os.environ, CMAKE_ARGS=choice.cmake_args,
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
           "--no-binary", "llama-cpp-python", "--wheel-dir", str(out),
           f"llama-cpp-python=={version}"]
    t0 = time.monotonic()
    with open(log, "w", encoding="utf-8") as fh:
        done = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{tail}\n\nthe llama-cpp-python build failed (exit {done.returncode}); "
                         f"full log: {log}\nA C/C++ compiler and cmake are needed (Debian: apt "
                         "install build-essential cmake); for CUDA, the CUDA toolkit (nvcc).")
    say(f"built in {(time.monotonic() - t0) / 60:.1f} min")


def install_wheel(wheel: Path, choice, key: str) -> None:
    record = record_path()
    try:
        installed = json.loads(record.read_text()).get("key")
    except (OSError, ValueError):
        installed = None
    if installed == key and importlib.util.find_spec("llama_cpp") is not None:
        say("this environment already has that build")
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--force-reinstall", "--no-index", str(wheel)], check=True)
    record.write_text(json.dumps({**choice.to_dict(), "key": key, "wheel": str(wheel),
                                  "self_check": None}, indent=2))


def write_check_result(result) -> None:
    record = record_path()
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        data = {}
    data["self_check"] = {"ok": result.ok, "detail": result.describe()}
    record.write_text(json.dumps(data, indent=2))


# -- commands -----------------------------------------------------------------------------------

def cmd_install() -> int:
    choice, key = current_choice()
    for reason in choice.reasons:
        say(reason)
    wheel = ensure_wheel(choice, key, cache_dir())
    install_wheel(wheel, choice, key)
    return 0


def self_check():
    return lb.run_self_check([sys.executable, "-m", "vibe_edge.engine.selfcheck", "--json"])


def cmd_check() -> int:
    choice, key = current_choice()
    result = self_check()
    if result.ok:
        say(f"{result.describe()}: {choice.describe()}")
        write_check_result(result)
        return 0
    say(f"{result.describe()} with the {choice.describe()}")
    print(result.output, file=sys.stderr)
    if "self-check: no model" in result.output:
        return 1  # nothing a rebuild can fix
    if choice.mode == "conservative" or not (lb.is_x86(choice.machine) or lb.is_arm64(choice.machine)):
        say("no more conservative build to try. Report this with the output above; meanwhile "
            "try VIBE_EDGE_LLAMA_BUILD=native, or other CMAKE_ARGS")
        return 1
    say("rebuilding once with the conservative option set (AVX2/FMA/F16C on x86-64, plain NEON "
        "on Arm); VIBE_EDGE_LLAMA_BUILD=conservative skips straight to it next time")
    fallback, fallback_key = current_choice("conservative")
    wheel = ensure_wheel(fallback, fallback_key, cache_dir())
    install_wheel(wheel, fallback, fallback_key)
    result = self_check()
    write_check_result(result)
    if result.ok:
        say(f"{result.describe()}: {fallback.describe()}")
        return 0
    print(result.output, file=sys.stderr)
    # Never leave an environment that crashes on first use: without llama_cpp, vibe-edge says
    # what is missing instead of dying by a signal.
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes",
                    "llama-cpp-python"], check=False)
    record_path().unlink(missing_ok=True)
    say(f"{result.describe()} with the conservative build too, so llama-cpp-python was "
        "uninstalled again. Report this with the output above; CMAKE_ARGS and "
        "VIBE_EDGE_LLAMA_BUILD=native are the knobs to try.")
    return 1


def cmd_show() -> int:
    choice, key = current_choice()
    print(json.dumps({**choice.to_dict(), "key": key, "cache": str(cache_dir() / key),
                      "cached": cached_wheel(key, cache_dir()) is not None}, indent=2))
    return 0


def main(argv: list[str]) -> int:
    commands = {"install": cmd_install, "check": cmd_check, "show": cmd_show}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
