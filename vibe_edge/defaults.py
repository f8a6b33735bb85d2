"""Every default vibe-edge ships with, in one place (httpx's DEFAULT_* style).

Settings, EngineConfig, ServerConfig, the hardware plan, the presets and the request policy all
read their defaults from here, so a value is written once and `vibe-edge doctor --json` shows
the same number the engine uses. Pure constants: this module imports nothing of vibe-edge.

Tuning constants of one algorithm (the loop guard's periods, the CJK advisory's threshold, the
plan's memory fractions) stay beside the code they tune; what is here is what a user, a config
file or a caller can change.
"""

from __future__ import annotations

from types import MappingProxyType

# -- the engine -------------------------------------------------------------------------------

DEFAULT_SLOTS = 4
"""Sequence slots when an EngineConfig is built without a plan (the CPU plan's default too)."""
DEFAULT_CTX_PER_SLOT = 4096
"""KV-cache tokens per slot when an EngineConfig is built without a plan."""
MIN_CTX_PER_SLOT = 256
"""Below this a reasoning model cannot even finish a prompt: settings and the engine refuse it."""
MAX_CTX_PER_SLOT = 1 << 20
"""The top of llama.cpp's range."""
DEFAULT_BATCH_SIZE = 512
"""Prompt tokens evaluated per step: larger prefills faster but needs a bigger compute buffer."""
MIN_BATCH_SIZE = 32
MAX_BATCH_SIZE = 65536
DEFAULT_PREFILL_CHUNK_BUSY = 64
"""While other slots are generating, a prefilling slot feeds at most this many prompt tokens
per step: on a CPU that keeps everyone else's stream moving during a long prompt."""
DEFAULT_QUEUE_SIZE = 64
"""Requests waiting for a free slot before new ones are refused (HTTP 429)."""
DEFAULT_REQUEST_TIMEOUT_S = 1800.0
"""A request still running after this long is ended (long reasoning takes minutes)."""
KV_TYPES = ("f16", "q8_0", "q4_0")
"""KV-cache element types llama.cpp offers that vibe-edge plans for."""
DEFAULT_KV_TYPE = "f16"
KV_BYTES_PER_ELEMENT = MappingProxyType({"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32})
"""Bytes per cached K/V element: q8_0 stores 32 values in 34 bytes (32 int8 + an f16 scale),
q4_0 32 values in 18 bytes."""

DEFAULT_SPEC = True
"""Speculative decoding (n-gram drafts from the slot's own context) is on: the engine measures
what a step costs on this machine and feeds a draft only where it is expected to pay
(engine/speculate.py), so where there is nothing to copy it costs at most a few failed probes.
On the 2-core AVX-512 CPU with the real 1.5B weights (docs/BENCHMARKS.md, 2026-12-02): a code
edit 2.35-2.38x, math 1.00x, prose 0.98-1.00x, four streams 0.98-1.00x (off vs off: 1.01-1.02x,
the noise). `--no-spec` (`VIBE_EDGE_SPEC=false`) turns it off."""
DEFAULT_SPEC_MAX_DRAFT = 15
"""Drafted tokens per slot and step at most; how many of them a step actually feeds is priced
by the measured cost of a step that size (engine/step_cost.py, engine/speculate.py)."""
MAX_SPEC_DRAFT = 16
DEFAULT_SPEC_NGRAM_MIN = 2
"""The shortest suffix of the context looked up to draft from; 1 drafts from single tokens,
which in text match too often to be right."""
DEFAULT_SPEC_NGRAM_MAX = 4
MAX_SPEC_NGRAM = 8
DEFAULT_SPEC_BATCH_TOKENS_CPU = 16
"""A step with drafts holds at most this many tokens (real tokens of the generating slots
first). Within it the measured step costs decide: on a CPU, where each token in a step costs,
they stop drafting as soon as several slots generate."""
DEFAULT_SPEC_BATCH_TOKENS_GPU = 16
"""On a GPU a decode step is memory-bound: 16 tokens cost little more than 1."""

# -- requests ---------------------------------------------------------------------------------

DEFAULT_PRESET = "math"
"""The preset whose prompts and sampling fill what a request leaves out."""
DEFAULT_ANSWER_RESERVE = 1024
"""Tokens kept for the answer when the thinking has to stop because the request's token limit
(or the slot's context) is near: a reasoning model that runs out mid-thought answers nothing.
Small limits reserve a quarter instead (see types.thinking_budget_ceiling)."""
MAX_STOP_STRINGS = 16
MAX_SAMPLES = 64
"""`n` samples per request at most (the engine also refuses more than its slots)."""
NO_THINKING = 0
"""Thinking budget as users write it (flags, config, HTTP, the chat), as llama.cpp's
--reasoning-budget: 0 is no thinking at all..."""
UNLIMITED_THINKING = -1
"""...and -1 no budget. Unset means the preset's budget."""
DEFAULT_LOOP_GUARD = True

# -- the hardware plan ------------------------------------------------------------------------

DEFAULT_CPU_SLOTS = DEFAULT_SLOTS
"""llama.cpp's batched decode shares one pass over the weights among sequences; on a few CPU
cores the gain flattens past about 4, while each slot costs a full KV cache."""
DEFAULT_GPU_SLOTS = 8
DEFAULT_JETSON_SLOTS = 4
"""Jetson: the GPU is small and shares the RAM, so fewer, longer slots."""
DEFAULT_CPU_CTX_CAP = 16384
DEFAULT_GPU_CTX_CAP = 32768
MIN_PLANNED_CTX_PER_SLOT = 2048
"""The plan never chooses less per slot on its own (a user may still ask for down to
MIN_CTX_PER_SLOT)."""

# -- the server -------------------------------------------------------------------------------

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_LOG_LEVEL = "warning"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""A 40k-token conversation is ~200 KB of text."""
MIN_MAX_BODY_BYTES = 1024
DEFAULT_KEEPALIVE_S = 5.0
"""An SSE comment after this long without output keeps proxies from closing a quiet stream."""
DEFAULT_GRACE_S = 10.0
"""On SIGTERM, let in-flight work finish this long before cancelling it."""
DEFAULT_RETRY_AFTER_S = 2
"""Retry-After on 429 and 503."""
MAX_API_KEY_BYTES = 4096
