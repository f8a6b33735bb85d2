"""Tokenizer export: byte-level BPE from tokenizer.json or vocab.json + merges.txt into GGUF keys.

The part that silently breaks a math model is the pre-tokenizer: llama.cpp re-implements each
known pre-tokenizer (regex splits) by name, so the GGUF must name the right one. Like llama.cpp's
converter we identify it by tokenizing a fixed check string and hashing the ids; a hash we do not
know is refused with an explanation, never guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import gguf

from vibe_edge.convert.errors import TokenizerError

__all__ = [
    "CHECK_TEXT",
    "KNOWN_PRE_TOKENIZERS",
    "QWEN2_SPLIT_REGEX",
    "TokenizerExport",
    "add_tokenizer_to_gguf",
    "check_hash",
    "export_tokenizer",
    "load_hf_tokenizer",
]

# The check string llama.cpp's convert_hf_to_gguf.py hashes (it must be byte-identical for the
# hashes below to mean anything): whitespace runs, emoji, digit runs, Khmer, Chinese, Cyrillic,
# punctuation runs and English contractions in both cases.
CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
    "sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

# sha256(str(ids of CHECK_TEXT)) -> llama.cpp pre-tokenizer name, for the families vibe-edge
# converts (values as published in llama.cpp's converter; the reference model is noted).
KNOWN_PRE_TOKENIZERS: dict[str, tuple[str, str]] = {
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": ("qwen2", "Qwen1.5/Qwen2/Qwen2.5(-Math), VibeThinker"),
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": ("qwen2", "Qwen3"),
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": ("deepseek-r1-qwen", "DeepSeek-R1-Distill-Qwen"),
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": ("llama-bpe", "Llama 3"),
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": ("smollm", "SmolLM/SmolLM2"),
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": ("gpt-2", "GPT-2"),
}

# The split Qwen2's tokenizer applies before byte-level BPE (digits one per token: \p{N}).
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer_class values whose vocab.json + merges.txt we can rebuild exactly.
_QWEN2_CLASSES = {"Qwen2Tokenizer", "Qwen2TokenizerFast"}
_GPT2_CLASSES = {"GPT2Tokenizer", "GPT2TokenizerFast"}


@dataclass
class TokenizerExport:
    """Everything the GGUF needs about the tokenizer."""

    pre: str
    check_hash: str
    tokens: list[str]
    token_types: list[int]
    source: str  # "tokenizer.json" | "vocab.json+merges.txt"
    n_added: int = 0
    special_ids: dict[str, int] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TokenizerError(f"{path.name} is unreadable ({exc})", hint="re-download the tokenizer files") from exc
    if not isinstance(data, dict):
        raise TokenizerError(f"{path.name} is not a JSON object")
    return data


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer_config.json"
    return _read_json(path) if path.is_file() else {}


def _build_from_vocab_merges(folder: Path, config: dict[str, Any]) -> Any:
    """Rebuild the fast tokenizer transformers would make from vocab.json + merges.txt."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    cls = config.get("tokenizer_class")
    if cls not in _QWEN2_CLASSES | _GPT2_CLASSES:
        raise TokenizerError(
            f"cannot identify the pre-tokenizer of a vocab.json + merges.txt tokenizer of class "
            f"{cls or '(none given)'}",
            hint="provide tokenizer.json (save it with transformers' save_pretrained); vibe-edge "
                 "never guesses a pre-tokenizer because a wrong one silently changes how numbers tokenize")
    vocab = _read_json(folder / "vocab.json")
    merges: list[tuple[str, str]] = []
    for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#version"):
            continue
        parts = line.split()
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                        continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                        byte_fallback=False))
    tok.decoder = decoders.ByteLevel()
    add_prefix_space = bool(config.get("add_prefix_space") or False)
    if cls in _QWEN2_CLASSES:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=False),
        ])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    added = config.get("added_tokens_decoder") or {}
    for tid in sorted(added, key=int):
        entry = added[tid]
        token = AddedToken(entry["content"], single_word=entry.get("single_word", False),
                           lstrip=entry.get("lstrip", False), rstrip=entry.get("rstrip", False),
                           normalized=entry.get("normalized", not entry.get("special", False)),
                           special=entry.get("special", False))
        if entry.get("special", False):
            tok.add_special_tokens([token])
        else:
            tok.add_tokens([token])
        got = tok.token_to_id(entry["content"])
        if got != int(tid):
            raise TokenizerError(
                f"added token {entry['content']!r} is declared with id {tid} but lands at id {got}",
                hint="tokenizer_config.json's added_tokens_decoder must continue vocab.json without gaps")
    return tok


def load_hf_tokenizer(folder: Path) -> tuple[Any, str]:
    """The checkpoint's tokenizer as a `tokenizers.Tokenizer`, and which files it came from."""
    folder = Path(folder)
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - tokenizers is a hard dependency of convert
        raise TokenizerError("the `tokenizers` package is required to convert a tokenizer") from exc
    config = _tokenizer_config(folder)
    tj = folder / "tokenizer.json"
    if tj.is_file():
        try:
            tok = Tokenizer.from_file(str(tj))
        except Exception as exc:  # the Rust side raises plain Exception subclasses
            raise TokenizerError(f"tokenizer.json cannot be loaded ({exc})",
                                 hint="re-download the tokenizer files") from exc
        model = json.loads(tok.to_str()).get("model", {})
        if model.get("type") != "BPE" or model.get("byte_fallback"):
            raise TokenizerError(
                f"tokenizer.json holds a {model.get('type')} tokenizer"
                + (" with byte fallback (SentencePiece-style)" if model.get("byte_fallback") else ""),
                hint="vibe-edge converts byte-level BPE tokenizers (Qwen2, Llama 3, SmolLM2)")
        return tok, "tokenizer.json"
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return _build_from_vocab_merges(folder, config), "vocab.json+merges.txt"
    if (folder / "tokenizer.model").is_file():
        raise TokenizerError("only a SentencePiece tokenizer.model was found",
                             hint="vibe-edge converts byte-level BPE tokenizers (tokenizer.json, or "
                                  "vocab.json + merges.txt)")
    raise TokenizerError(f"no tokenizer in {folder}: expected tokenizer.json, or vocab.json + merges.txt",
                         hint="copy the tokenizer files of the checkpoint next to config.json")


def check_hash(tok: Any) -> str:
    """sha256 of the check text's ids, computed the way llama.cpp's converter does."""
    ids = tok.encode(CHECK_TEXT).ids
    return sha256(str(ids).encode()).hexdigest()


def _looks_special(text: str) -> bool:
    # Same rule llama.cpp applies to added tokens that are not flagged special: <|...|> markers
    # (and the full-width DeepSeek variant) are control tokens.
    return ((text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<｜") and text.endswith("｜>"))
            or text in ("<pad>", "<mask>")
            or (text.startswith("<unused") and text.endswith(">")))


def export_tokenizer(folder: Path, vocab_size: int) -> TokenizerExport:
    """Load, identify and lay out the tokenizer for a model with `vocab_size` embedding rows."""
    tok, source = load_hf_tokenizer(folder)
    digest = check_hash(tok)
    if digest not in KNOWN_PRE_TOKENIZERS:
        known = ", ".join(sorted({name for name, _ in KNOWN_PRE_TOKENIZERS.values()}))
        raise TokenizerError(
            f"the tokenizer's pre-tokenizer could not be identified (check hash {digest[:16]}...)",
            hint=f"vibe-edge knows {known}. A wrong pre-tokenizer silently changes how text (numbers "
                 "above all) is split, so unknown tokenizers are refused rather than guessed")
    pre = KNOWN_PRE_TOKENIZERS[digest][0]
    vocab: dict[str, int] = tok.get_vocab(with_added_tokens=True)
    if not vocab:
        raise TokenizerError("the tokenizer's vocabulary is empty")
    top = max(vocab.values())
    if top >= vocab_size:
        raise TokenizerError(
            f"vocab size mismatch: the tokenizer has ids up to {top} but config.json's vocab_size "
            f"(the embedding rows) is {vocab_size}",
            hint="the tokenizer and the weights come from different checkpoints")
    added = tok.get_added_tokens_decoder()
    by_id = {i: t for t, i in vocab.items()}
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in by_id:
            # Embedding rows past the tokenizer (Qwen2 pads 151,665 tokens to 151,936 rows).
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif i in added:
            content = added[i].content
            tokens.append(content)
            types.append(int(gguf.TokenType.CONTROL if added[i].special or _looks_special(content)
                             else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(by_id[i])
            types.append(int(gguf.TokenType.NORMAL))
    return TokenizerExport(pre=pre, check_hash=digest, tokens=tokens, token_types=types,
                           source=source, n_added=len(added))


def add_tokenizer_to_gguf(writer: gguf.GGUFWriter, folder: Path, export: TokenizerExport,
                          architecture: str) -> dict[str, int]:
    """Write tokenizer keys: model, pre, tokens, types, merges, special ids, add_* flags, template.

    Special ids, add_bos/add_eos and the chat template are read by the gguf package's
    SpecialVocab, the same reader llama.cpp's converter uses, so the values match its output.
    """
    config = _tokenizer_config(folder)
    if architecture == "llama" and config.get("add_prefix_space") is not None:
        writer.add_add_space_prefix(bool(config["add_prefix_space"]))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(export.pre)
    writer.add_token_list(export.tokens)
    writer.add_token_types(export.token_types)
    special = gguf.SpecialVocab(folder, load_merges=True)
    if not special.merges:
        raise TokenizerError("the tokenizer has no BPE merges", hint="re-download tokenizer.json / merges.txt")
    if architecture == "llama" and export.tokens and len(export.tokens) == 49152:
        # llama.cpp's converter turns BOS off for Llama-architecture models with this vocabulary
        # size (SmolLM2, Granite small); an explicit add_bos_token below still takes precedence.
        special.add_special_token.setdefault("bos", False)
    special.add_to_gguf(writer, quiet=True)
    export.special_ids = dict(special.special_token_ids)
    return export.special_ids
