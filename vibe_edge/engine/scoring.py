"""Whole-sequence scoring with the engine's own llama.cpp wrappers: every position's logits for a
window of tokens, and tokenization from a vocabulary-only load. For measurement, not serving:
convert's verification (tokenizer parity, logits against transformers, quantization quality)
uses these instead of reaching into llama-cpp-python."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vibe_edge.engine._llama import Batch, Context, ContextParams, Model, usable_cores

__all__ = ["LogitsRunner", "Vocabulary"]


class Vocabulary:
    """A GGUF's tokenizer as llama.cpp loads it (vocabulary and metadata only, no weights)."""

    def __init__(self, path: str | Path):
        self._model = Model(str(path), vocab_only=True)

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        return self._model.tokenize(text, add_special=add_special, parse_special=parse_special) if text else []

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> Vocabulary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogitsRunner:
    """A model that returns the logits at every position of a token window, each window
    evaluated from an empty cache (one sequence, flash attention off: llama.cpp's reference
    path, as llama-cpp-python's Llama computes it by default)."""

    def __init__(self, path: str | Path, n_ctx: int, n_threads: int | None = None):
        self.n_ctx = n_ctx
        self._model = Model(str(path))
        threads = n_threads or usable_cores()
        try:
            self._ctx = Context(self._model, ContextParams(
                n_seq=1, ctx_per_seq=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, threads=threads,
                threads_batch=threads, flash_attn=False))
        except Exception:
            self._model.close()
            raise
        self._batch = Batch(n_ctx)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        if not 0 < len(ids) <= self.n_ctx:
            raise ValueError(f"a window holds 1 to {self.n_ctx} tokens, got {len(ids)}")
        self._ctx.clear()
        self._batch.clear()
        for pos, token in enumerate(ids):
            self._batch.add(int(token), pos, 0, True)
        status = self._ctx.decode(self._batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")
        return self._ctx.logits(len(ids))

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()
        self._model.close()
