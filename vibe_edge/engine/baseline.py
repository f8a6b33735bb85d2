"""llama-cpp-python's own single-sequence `Llama`: the baseline the engine benchmark measures
against (same GGUF, threads and attention settings), loaded beside the engine so the two can
be measured in alternating rounds (a shared machine's speed drifts by 10% between minutes)."""

from __future__ import annotations

import time

from llama_cpp import Llama

__all__ = ["LlamaCppBaseline"]


class LlamaCppBaseline:
    def __init__(self, model_path: str, *, threads: int, flash_attn: bool, gpu_layers: int,
                 prompt: str, prompt_tokens: int, segment_tokens: int, n_ctx: int = 2048):
        self.segment_tokens = segment_tokens
        self.llm = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=threads,
                         n_threads_batch=threads, flash_attn=flash_attn, n_gpu_layers=gpu_layers,
                         verbose=False)
        self.prompt = self.llm.tokenize(prompt.encode(), add_bos=False)[:prompt_tokens]

    def decode_tps(self) -> float:
        """One segment on the same prompt: Llama.generate reuses the cached prompt (it evaluates
        only the last prompt token again), as the engine's prefix cache does."""
        times = []
        for i, _token in enumerate(self.llm.generate(self.prompt, temp=0.0, reset=True)):
            times.append(time.perf_counter())
            if i + 1 >= self.segment_tokens:
                break
        return (len(times) - 1) / (times[-1] - times[0])

    def close(self) -> None:
        self.llm.close()
