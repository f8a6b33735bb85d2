"""Proving a conversion faithful: tokenizer parity, logits against transformers, quant quality.

Needs the `verify` extra (transformers + torch) for the Hugging Face side; llama.cpp's side goes
through the engine's own wrappers (vibe_edge.engine.scoring), and the numbers (KL, top-1,
perplexity) come from vibe_edge.bench.metrics. Every check returns a plain result object with
`to_dict()` for the manifest; `passed` is False when a stated threshold is missed, and callers
fail loudly.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vibe_edge.convert.corpus import eval_text, logit_prompts, parity_corpus
from vibe_edge.convert.errors import DependencyMissing
from vibe_edge.convert.writer import ProgressFn
from vibe_edge.bench.metrics import kl_divergence, log_softmax, next_token_nll
from vibe_edge.engine.scoring import LogitsRunner, Vocabulary

__all__ = [
    "DEFAULT_EVAL_CTX",
    "DEFAULT_KL_BUDGET",
    "DEFAULT_LOGIT_THRESHOLDS",
    "LogitsResult",
    "ParityResult",
    "QuantEval",
    "QuantTable",
    "compare_logits",
    "evaluate_quants",
    "have_verify_deps",
    "tokenizer_parity",
]

# Unquantized GGUF vs transformers (float32 reference). The file stores the checkpoint's own
# precision and llama.cpp computes in f32, so differences are rounding only; an overflow or a
# wrong tensor layout blows far past these.
DEFAULT_LOGIT_THRESHOLDS = {"kl_mean": 0.01, "kl_max": 0.05, "top1_min": 0.95, "max_abs_diff": 2.0}
# The recommendation: the smallest quantization whose mean KL against the unquantized GGUF is
# within this budget (nats per token on the built-in math+code text).
DEFAULT_KL_BUDGET = 0.05
DEFAULT_EVAL_CTX = 256  # tokens per evaluation window (keeps logits buffers ~150 MB at 152k vocab)


def have_verify_deps() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _require_hf():
    if not have_verify_deps():
        raise DependencyMissing("verification needs transformers and torch",
                                hint="pip install 'vibe-edge[verify]', or convert with --no-verify")
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    return torch, transformers


@contextlib.contextmanager
def _quiet_llama() -> Iterator[None]:
    """Silence llama.cpp's loader chatter on stderr for the duration (fd-level: it is C code)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# --- 1. tokenizer parity -------------------------------------------------------------------------

@dataclass
class ParityResult:
    n_strings: int
    n_mismatches: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)  # the first few, for display

    @property
    def passed(self) -> bool:
        return self.n_mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {"n_strings": self.n_strings, "n_mismatches": self.n_mismatches,
                "passed": self.passed, "examples": self.mismatches[:5]}


def _vocabulary(gguf_path: Path) -> Vocabulary:
    with _quiet_llama():
        return Vocabulary(gguf_path)


def tokenizer_parity(hf_folder: Path, gguf_path: Path, corpus: Sequence[str] | None = None,
                     keep: int = 10) -> ParityResult:
    """HF tokenizer vs the GGUF's tokenizer as llama.cpp loads it, on every corpus string.

    Special tokens are parsed on both sides (HF always splits on added tokens; llama.cpp does with
    parse_special), and no BOS/EOS is added on either, so ids must be identical.
    """
    _, transformers = _require_hf()
    hf = transformers.AutoTokenizer.from_pretrained(str(hf_folder))
    model = _vocabulary(gguf_path)
    texts = list(corpus if corpus is not None else parity_corpus())
    mismatches: list[dict[str, Any]] = []
    n_bad = 0
    try:
        for text in texts:
            want = list(hf.encode(text, add_special_tokens=False))
            got = model.tokenize(text, add_special=False, parse_special=True)
            if want != got:
                n_bad += 1
                if len(mismatches) < keep:
                    mismatches.append({"text": text, "hf": want[:40], "gguf": got[:40]})
    finally:
        model.close()
    return ParityResult(len(texts), n_bad, mismatches)


class _LlamaRunner(LogitsRunner):
    """The engine's logits runner, quiet while llama.cpp loads the model."""

    def __init__(self, gguf_path: Path, n_ctx: int, n_threads: int | None = None):
        with _quiet_llama():
            super().__init__(gguf_path, n_ctx, n_threads)


# --- 2. logits against transformers --------------------------------------------------------------

@dataclass
class LogitsResult:
    n_prompts: int
    n_tokens: int
    kl_mean: float
    kl_max: float
    top1: float
    max_abs_diff: float
    thresholds: dict[str, float]

    @property
    def failures(self) -> list[str]:
        t = self.thresholds
        out = []
        if not math.isfinite(self.kl_mean) or self.kl_mean > t["kl_mean"]:
            out.append(f"mean KL {self.kl_mean:.4g} > {t['kl_mean']}")
        if not math.isfinite(self.kl_max) or self.kl_max > t["kl_max"]:
            out.append(f"max KL {self.kl_max:.4g} > {t['kl_max']}")
        if self.top1 < t["top1_min"]:
            out.append(f"top-1 agreement {self.top1:.3f} < {t['top1_min']}")
        if not math.isfinite(self.max_abs_diff) or self.max_abs_diff > t["max_abs_diff"]:
            out.append(f"max logit difference {self.max_abs_diff:.4g} > {t['max_abs_diff']}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compare_logits(hf_folder: Path, gguf_path: Path, prompts: Sequence[str] | None = None,
                   thresholds: dict[str, float] | None = None) -> LogitsResult:
    """Run transformers (float32) and llama.cpp on the same token ids and compare every position."""
    torch, transformers = _require_hf()
    tok = transformers.AutoTokenizer.from_pretrained(str(hf_folder))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(hf_folder), dtype=torch.float32)
    model.eval()
    encoded = [list(tok.encode(p, add_special_tokens=True)) for p in (prompts or logit_prompts())]
    encoded = [ids for ids in encoded if ids]
    runner = _LlamaRunner(gguf_path, n_ctx=max(64, max(len(ids) for ids in encoded) + 8))
    kls: list[np.ndarray] = []
    agree = total = 0
    max_diff = 0.0
    try:
        for ids in encoded:
            with torch.no_grad():
                ref = model(torch.tensor([ids])).logits[0].float().numpy()
            got = runner.logits(ids)
            n_vocab = min(ref.shape[-1], got.shape[-1])
            ref, got = ref[:, :n_vocab], got[:, :n_vocab]
            kls.append(kl_divergence(log_softmax(ref), log_softmax(got)))
            agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
            total += len(ids)
            diff = np.abs(ref - got)
            max_diff = max(max_diff, float(diff.max()) if np.isfinite(diff).all() else float("inf"))
    finally:
        runner.close()
        del model
    all_kl = np.concatenate(kls)
    return LogitsResult(len(encoded), total, float(np.mean(all_kl)), float(np.max(all_kl)),
                        agree / max(1, total), max_diff, dict(thresholds or DEFAULT_LOGIT_THRESHOLDS))


# --- 3. quantizations against the unquantized GGUF -----------------------------------------------

@dataclass
class QuantEval:
    quant: str
    size_bytes: int
    kl_mean: float
    kl_p99: float
    top1: float
    perplexity: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QuantTable:
    base: str
    base_perplexity: float
    n_tokens: int
    kl_budget: float
    rows: list[QuantEval]
    recommended: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "base_perplexity": self.base_perplexity, "n_tokens": self.n_tokens,
                "kl_budget": self.kl_budget, "recommended": self.recommended,
                "rows": [r.to_dict() for r in self.rows]}

    def format(self) -> str:
        lines = [f"{'quant':<8} {'size':>10} {'KL mean':>9} {'KL p99':>9} {'top-1':>7} {'PPL':>9}",
                 f"{self.base:<8} {'':>10} {'0':>9} {'0':>9} {'1.000':>7} {self.base_perplexity:>9.3f}"]
        for r in self.rows:
            mark = "  <- recommended" if r.quant == self.recommended else ""
            lines.append(f"{r.quant:<8} {r.size_bytes / 2**20:>8.1f}MB {r.kl_mean:>9.4f} {r.kl_p99:>9.4f} "
                         f"{r.top1:>7.3f} {r.perplexity:>9.3f}{mark}")
        lines.append(f"KL budget {self.kl_budget} nats/token over {self.n_tokens} tokens: "
                     + (f"recommended {self.recommended} (the smallest within budget)" if self.recommended
                        else "no quantization is within budget; keep the unquantized file"))
        return "\n".join(lines)


def _windows(ids: Sequence[int], n_ctx: int) -> list[list[int]]:
    return [list(ids[i:i + n_ctx]) for i in range(0, len(ids) - 1, n_ctx) if len(ids[i:i + n_ctx]) > 1]


def evaluate_quants(base_path: Path, quants: dict[str, Path], *, text: str | None = None,
                    n_ctx: int = DEFAULT_EVAL_CTX, kl_budget: float = DEFAULT_KL_BUDGET,
                    base_label: str = "base", progress: ProgressFn | None = None) -> QuantTable:
    """KL, top-1 and perplexity of each quantized GGUF against the unquantized one.

    The built-in math+code text is cut into windows of `n_ctx` tokens, each evaluated from an
    empty cache. Per window the base model runs once and every quantization is compared with it,
    so the KL is exact (full vocabulary) without storing the base's logits for the whole text.
    All models stay loaded (llama.cpp maps the files; quantized 1.5B files are ~1 GB each).
    """
    with _vocabulary(base_path) as vocab:
        ids = vocab.tokenize(text or eval_text())
    windows = _windows(ids, n_ctx)
    n_scored = sum(len(w) - 1 for w in windows)
    names = list(quants)
    runners: dict[str, _LlamaRunner] = {}
    kl_parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    agree = dict.fromkeys(names, 0)
    nll = dict.fromkeys(names, 0.0)
    base_nll = 0.0
    try:
        base = runners[""] = _LlamaRunner(base_path, n_ctx)
        for name in names:
            runners[name] = _LlamaRunner(quants[name], n_ctx)
        for wi, window in enumerate(windows):
            p = log_softmax(base.logits(window))[:-1]
            p_prob = np.exp(p)
            p_top = p.argmax(-1)
            base_nll += float(next_token_nll(p, window).sum())
            for name in names:
                q = log_softmax(runners[name].logits(window))[:-1]
                kl_parts[name].append((p_prob * (p - q)).sum(axis=-1))
                agree[name] += int((p_top == q.argmax(-1)).sum())
                nll[name] += float(next_token_nll(q, window).sum())
            if progress is not None:
                progress("evaluate", wi + 1, len(windows))
    finally:
        for runner in runners.values():
            runner.close()
    rows = []
    for name in names:
        all_kl = np.concatenate(kl_parts[name]) if kl_parts[name] else np.zeros(1)
        rows.append(QuantEval(name, Path(quants[name]).stat().st_size, float(all_kl.mean()),
                              float(np.percentile(all_kl, 99)), agree[name] / max(1, n_scored),
                              math.exp(nll[name] / max(1, n_scored))))
    within = [r for r in rows if r.kl_mean <= kl_budget]
    recommended = min(within, key=lambda r: r.size_bytes).quant if within else None
    return QuantTable(base_label, math.exp(base_nll / max(1, n_scored)), n_scored, kl_budget, rows, recommended)
