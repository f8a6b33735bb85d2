"""The scheduler's seam to llama.cpp: what continuous batching needs from a decoder, and no more.

The scheduler's policy (admission, prefix routing, least-recently-used slot choice, chunked
prefill, stop and length rules, the thinking budget) is written against `DecodeBackend`. In the
engine it runs on `LlamaBackend`, one llama.cpp context whose sequences are the slots; in
tests/engine/test_scheduler_policy.py it runs on a fake that records every batch, so the rules
are tested on their own, beside the real-model tests.

What a backend offers:

- a reusable batch (`new_batch`): tokens of several sequences at explicit positions, each with
  or without logits, decoded in one call (`decode`);
- `sample(sampler, index)`: a token drawn from the logits at one batch index, or None when the
  draw is slow (a grammar) and the sampler finishes it (`sample_slow`) off the scheduler thread;
- per-sequence KV edits: `remove` drops a range of positions, `copy` shares one sequence's
  cells with another;
- the vocabulary facts the text path needs (`piece`, `is_eog`).

It is shaped for what comes next. `n` samples from one prompt: prefill the prompt once, then
`copy(src, dst)` its KV into the other slots (llama_memory_seq_cp, which works across the
sequences of a non-unified cache) and decode each slot with its own sampler. Speculative
decoding: a batch may hold several drafted tokens of one sequence with logits at each of them
(`add(..., logits=True)` returns each index), the sampler is asked at each index, and
`remove(seq, first_rejected)` takes the rejected positions out of the KV (llama_memory_seq_rm).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from vibe_edge.engine._llama import Batch, Context, Model, Sampler

__all__ = ["BatchLike", "DecodeBackend", "LlamaBackend", "TokenSampler"]


class BatchLike(Protocol):
    """A reusable batch: cleared and refilled every step."""

    n: int  # tokens in the batch

    def clear(self) -> None: ...

    def add(self, token: int, pos: int, seq: int, want_logits: bool) -> int:
        """Append `token` at position `pos` of sequence `seq`; returns its batch index (the index
        to sample at when want_logits)."""

    def close(self) -> None: ...


class TokenSampler(Protocol):
    """One request's sampler chain, as the scheduler holds it (the backend draws with it)."""

    def sample_slow(self) -> int:
        """Finish a draw the backend's sample() left undone (it returned None): on a copy of the
        logits, so it may run on another thread while the context decodes other slots."""

    def accept(self, tokens: Iterable[int]) -> None:
        """Tell the chain about tokens it did not draw (penalty history, grammar state)."""

    def close(self) -> None: ...


class DecodeBackend(Protocol):
    n_seq: int        # sequences (slots) the context holds
    ctx_per_seq: int  # KV cells each sequence owns

    def new_batch(self, capacity: int) -> BatchLike: ...

    def decode(self, batch: BatchLike) -> int:
        """Evaluate the batch: 0 on success, else llama_decode's status (1: no KV room,
        2: aborted, < 0: error); on failure nothing of the batch is in the KV."""

    def sample(self, sampler: TokenSampler, index: int) -> int | None:
        """Draw the next token from the logits at batch index `index` (the sampler accepts it),
        or None when the draw is slow (a grammar refused the token the chain drew: the whole
        vocabulary must be filtered) and sampler.sample_slow() must finish it, which the
        scheduler runs off its thread."""

    def remove(self, seq: int, start: int = -1, end: int = -1) -> None:
        """Drop positions [start, end) of a sequence from the KV (-1: open bound)."""

    def copy(self, src: int, dst: int, start: int = -1, end: int = -1) -> None:
        """Make positions [start, end) of `src` part of `dst` too (-1: open bound)."""

    def piece(self, token: int) -> bytes: ...

    def is_eog(self, token: int) -> bool: ...


class LlamaBackend:
    """DecodeBackend over one llama.cpp context (its sequences are the engine's slots)."""

    def __init__(self, model: Model, ctx: Context):
        self.model = model
        self.ctx = ctx
        self.n_seq = ctx.params.n_seq
        self.ctx_per_seq = ctx.params.ctx_per_seq

    def new_batch(self, capacity: int) -> Batch:
        return Batch(capacity)

    def decode(self, batch: Batch) -> int:  # type: ignore[override]
        return self.ctx.decode(batch)

    def sample(self, sampler: Sampler, index: int) -> int | None:  # type: ignore[override]
        return sampler.sample_fast(self.ctx, index)

    def remove(self, seq: int, start: int = -1, end: int = -1) -> None:
        self.ctx.seq_remove(seq, start, end)

    def copy(self, src: int, dst: int, start: int = -1, end: int = -1) -> None:
        self.ctx.seq_copy(src, dst, start, end)

    def piece(self, token: int) -> bytes:
        return self.model.piece(token)

    def is_eog(self, token: int) -> bool:
        return self.model.is_eog(token)
