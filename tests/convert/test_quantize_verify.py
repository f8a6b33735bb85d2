"""Quantization (every listed type loads; error grows as bits shrink) and the verification checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vibe_edge.convert.corpus import SPECIAL_TAGS, eval_text, parity_corpus
from vibe_edge.convert.core import convert_folder
from vibe_edge.gguf_reader import read_gguf
from vibe_edge.convert.quantize import QUANT_TYPES, quantize_gguf


SHORT_TEXT = eval_text(blocks=6)  # ~500 tokens: keeps the 7-way comparison fast in tests


@pytest.fixture(scope="session")
def all_quants(tmp_path_factory, tiny_tied_gguf) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("quants")
    return {q: quantize_gguf(tiny_tied_gguf, out / f"tiny-{q}.gguf", q).path for q in QUANT_TYPES}


def test_every_quant_type_loads_and_is_labelled(all_quants):
    from vibe_edge.engine.scoring import LogitsRunner

    for quant, path in all_quants.items():
        info = read_gguf(path)
        ftype = info.fields["general.file_type"]
        assert ftype == QUANT_TYPES[quant][0], quant
        runner = LogitsRunner(path, n_ctx=64, n_threads=2)
        try:
            logits = runner.logits([151644, 872, 198, 16, 17])
            assert logits.shape[0] == 5 and np.isfinite(logits).all()
        finally:
            runner.close()


def test_error_grows_as_bits_shrink(tiny_tied_gguf, all_quants):
    from vibe_edge.convert.verify import evaluate_quants

    table = evaluate_quants(tiny_tied_gguf, all_quants, text=SHORT_TEXT, n_ctx=128)
    kl = {r.quant: r.kl_mean for r in table.rows}
    top1 = {r.quant: r.top1 for r in table.rows}
    chain = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M"]
    assert [kl[q] for q in chain] == sorted(kl[q] for q in chain), kl
    assert top1["Q8_0"] > top1["Q4_K_M"] > top1["Q3_K_M"]
    for q in ("Q4_0", "IQ4_XS"):  # the other 4-bit types sit between 5 and 3 bits
        assert kl["Q5_K_M"] < kl[q] < kl["Q3_K_M"], (q, kl)
    assert kl["Q8_0"] < 0.05
    assert table.n_tokens > 400
    assert table.recommended is not None
    within = [r for r in table.rows if r.kl_mean <= table.kl_budget]
    assert table.recommended == min(within, key=lambda r: r.size_bytes).quant
    text = table.format()
    assert "recommended" in text and "Q3_K_M" in text


def test_builtin_corpora_are_big_and_varied(tiny_tied):
    from vibe_edge.convert.tokenizer import load_hf_tokenizer

    corpus = parity_corpus()
    assert len(corpus) >= 1000 and len(set(corpus)) > 900
    joined = "".join(corpus)
    for needle in ("\\frac", "def ", "fn ", "我", "🚀", "\t", "  ", *SPECIAL_TAGS):
        assert needle in joined, needle
    assert any(len(s) > 15 and s.isdigit() for s in corpus)
    tok, _ = load_hf_tokenizer(tiny_tied)
    n_tokens = len(tok.encode(eval_text()).ids)
    assert n_tokens >= 4000
    assert "\\boxed" in eval_text() and "def " in eval_text()


def test_tokenizer_parity_hf_vs_llama_cpp(tiny_tied, tiny_tied_gguf):
    pytest.importorskip("transformers")
    from vibe_edge.convert.verify import tokenizer_parity

    result = tokenizer_parity(tiny_tied, tiny_tied_gguf)
    assert result.n_strings >= 1000
    assert result.passed, result.mismatches[:3]


def test_logits_match_transformers_tied_bf16(tiny_tied, tiny_tied_gguf):
    pytest.importorskip("transformers")
    from vibe_edge.convert.verify import compare_logits

    result = compare_logits(tiny_tied, tiny_tied_gguf)
    assert result.passed, result.failures
    assert result.top1 >= 0.95 and result.kl_mean < 1e-3


def test_logits_match_transformers_untied_f16(tiny_untied, tmp_path):
    pytest.importorskip("transformers")
    from vibe_edge.convert.verify import compare_logits

    out = tmp_path / "u.gguf"
    convert_folder(tiny_untied, out)
    result = compare_logits(tiny_untied, out)
    assert result.passed, result.failures


def test_logits_check_fails_loudly_on_wrong_weights(tiny_untied, tiny_tied_gguf):
    """A GGUF that does not hold the checkpoint's weights misses every threshold."""
    pytest.importorskip("transformers")
    from vibe_edge.convert.verify import compare_logits

    result = compare_logits(tiny_untied, tiny_tied_gguf)
    assert not result.passed
    assert any("KL" in f for f in result.failures)


def test_full_pipeline_with_verification(tiny_tied, tmp_path):
    pytest.importorskip("transformers")
    from vibe_edge.convert.pipeline import ConvertRequest, run_convert
    from vibe_edge.registry import list_models, resolve_model

    models = tmp_path / "models"
    report = run_convert(ConvertRequest(src=str(tiny_tied), out_dir=models, quants=["q4_k_m", "Q8_0"],
                                        name="VibeThinker-tiny", eval_text=SHORT_TEXT,
                                        parity_corpus=parity_corpus(300)))
    names = sorted(e.name for e in list_models(models))
    assert names == ["VibeThinker-tiny-Q4_K_M", "VibeThinker-tiny-Q8_0"]  # bf16 intermediate removed
    assert report.removed_unquantized
    m = {mf.quant: mf for mf in report.manifests}
    q4 = m["Q4_K_M"]
    assert q4.architecture == "qwen2" and q4.context_length == 4096 and q4.n_params > 0
    assert q4.sha256 and len(q4.sha256) == 64 and q4.size_bytes == (models / q4.file).stat().st_size
    assert q4.verification["tokenizer_parity"]["passed"]
    assert q4.verification["logits"]["passed"]
    assert q4.verification["quantization"]["reference"] == "BF16"
    assert m["Q8_0"].verification["quantization"]["kl_mean"] < q4.verification["quantization"]["kl_mean"]
    assert q4.source["folder"] == str(tiny_tied)
    # the runtime resolves it by name through the registry
    resolved = resolve_model("VibeThinker-tiny-Q4_K_M", models)
    assert resolved.path == models / "VibeThinker-tiny-Q4_K_M.gguf"
    assert not list(models.glob(".vibe-edge-tmp*"))
