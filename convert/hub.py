"""Hugging Face hub access through huggingface-hub: only the files we need, into the standard cache.

huggingface-hub gives us resumable downloads, the shared cache (HF_HUB_CACHE / HF_HOME), and
HF_HUB_OFFLINE: when offline, or when the hub cannot be reached, a cached snapshot is used. Its
exceptions are translated into HubError messages that say what to do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vibe_edge.convert.errors import HubError

__all__ = [
    "CHECKPOINT_PATTERNS",
    "HubSnapshot",
    "download_checkpoint",
    "download_gguf",
    "looks_like_repo_id",
]

# What a conversion reads: config, weights, tokenizer, generation defaults, chat template, card.
CHECKPOINT_PATTERNS = [
    "config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
    "chat_template.jinja", "chat_template.json", "README.md",
]
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class HubSnapshot:
    repo: str
    revision: str  # what the user asked for ("main" by default)
    commit: str | None  # the commit the snapshot folder belongs to
    folder: Path


def looks_like_repo_id(text: str) -> bool:
    return bool(_REPO_RE.match(text)) and not Path(text).expanduser().exists()


def _translate(exc: Exception, repo: str, revision: str | None) -> HubError:
    from huggingface_hub import errors as hf_errors

    rev = f" at revision {revision!r}" if revision else ""
    if isinstance(exc, hf_errors.GatedRepoError):
        return HubError(f"{repo} is a gated repository: its license must be accepted on the hub",
                        hint="accept it on huggingface.co, then log in (`hf auth login`) or set HF_TOKEN")
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return HubError(f"{repo} has no revision {revision!r}", hint="check the branch, tag or commit given to --revision")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return HubError(f"no repository {repo!r} on the hub (or it is private)",
                        hint="check the spelling (org/name); for a private repo log in or set HF_TOKEN")
    incomplete = getattr(hf_errors, "IncompleteSnapshotError", None)  # newer huggingface-hub only
    if incomplete is not None and isinstance(exc, incomplete):
        return HubError(f"the cached copy of {repo}{rev} is incomplete and the hub cannot be reached",
                        hint="connect to the network and run the command again (downloads resume)")
    if isinstance(exc, (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled)):
        return HubError(f"{repo}{rev} is not in the local cache and the hub cannot be reached "
                        "(no network, or HF_HUB_OFFLINE=1)",
                        hint="connect to the network once to download it, or pass a local folder")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        return HubError(f"the hub refused the request for {repo}: {exc}")
    return HubError(f"could not fetch {repo}{rev}: {exc}")


def _snapshot(repo: str, revision: str | None, patterns: list[str], cache_dir: Path | None) -> HubSnapshot:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub import errors as hf_errors
    except ImportError as exc:  # pragma: no cover - huggingface-hub is a core dependency
        raise HubError("huggingface-hub is not installed", hint="pip install huggingface-hub") from exc
    # huggingface-hub reads HF_HUB_CACHE once, at import; read it per call so a changed
    # environment (a test, an embedding application) is honoured.
    cache = cache_dir or os.environ.get("HF_HUB_CACHE")
    try:
        folder = Path(snapshot_download(repo, revision=revision, allow_patterns=patterns,
                                        cache_dir=str(cache) if cache else None))
    except (hf_errors.HfHubHTTPError, hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled,
            getattr(hf_errors, "IncompleteSnapshotError", hf_errors.LocalEntryNotFoundError), ValueError) as exc:
        raise _translate(exc, repo, revision) from exc
    except OSError as exc:  # connection errors surface as OSError subclasses in some versions
        raise _translate(exc, repo, revision) from exc
    commit = folder.name if folder.parent.name == "snapshots" else None
    return HubSnapshot(repo, revision or "main", commit, folder)


def download_checkpoint(repo: str, revision: str | None = None, cache_dir: Path | None = None) -> HubSnapshot:
    """The files a conversion needs from `repo`, downloaded (resumably) or taken from the cache."""
    snap = _snapshot(repo, revision, CHECKPOINT_PATTERNS, cache_dir)
    if not (snap.folder / "config.json").is_file():
        raise HubError(f"{repo} has no config.json: it is not a Hugging Face model checkpoint",
                       hint="for a repository of GGUF files use `vibe-edge pull`")
    return snap


def download_gguf(repo: str, quant: str, revision: str | None = None,
                  cache_dir: Path | None = None) -> tuple[HubSnapshot, Path]:
    """The one GGUF file of `repo` for `quant` (e.g. Q4_K_M), downloaded or from the cache."""
    patterns = [f"*{quant}*.gguf", f"*{quant.lower()}*.gguf"]
    snap = _snapshot(repo, revision, patterns, cache_dir)
    found = sorted(p for p in snap.folder.rglob("*.gguf")
                   if quant.lower() in p.name.lower() and "mmproj" not in p.name.lower())
    # Prefer a single-file model over split parts ("-00001-of-00002").
    whole = [p for p in found if not re.search(r"-\d{5}-of-\d{5}\.gguf$", p.name)]
    if not whole:
        available = sorted({p.name for p in snap.folder.rglob("*.gguf")})
        raise HubError(f"{repo} has no single-file {quant} GGUF"
                       + (f" in the cache (cached: {', '.join(available)})" if available else ""),
                       hint="check the quantization name (e.g. Q4_K_M, Q8_0) against the repository's files")
    return snap, whole[0]
