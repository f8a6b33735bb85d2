"""Settings: defaults < config file < environment < flags, with errors that name their source."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import vibe_edge.settings as settings_mod
from vibe_edge.errors import SettingsError
from vibe_edge.hardware import make_plan
from vibe_edge.settings import (
    SETTING_NAMES,
    Settings,
    default_config_file,
    default_models_dir,
    env_var_name,
    load_settings,
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


def test_defaults() -> None:
    s = Settings()
    assert s.models_dir is None and s.model is None
    assert (s.threads, s.gpu_layers, s.slots, s.ctx_per_slot, s.kv_type) == (None,) * 5
    assert s.batch_size == 512 and s.queue_size == 64 and s.request_timeout_s == 1800.0
    assert s.preset == "math" and s.thinking_budget is None and s.loop_guard is True
    assert (s.host, s.port, s.log_level) == ("127.0.0.1", 8080, "warning")
    assert all(source == "default" for _, _, source in s.describe())
    assert [name for name, _, _ in s.describe()] == list(SETTING_NAMES)
    assert "sources" not in SETTING_NAMES


def test_missing_default_config_file_is_fine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(settings_mod.platformdirs, "user_config_dir", lambda app: str(tmp_path / "cfg"))
    assert default_config_file({}) == tmp_path / "cfg" / "config.toml"
    assert load_settings(env={}) == Settings()


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(config_file=tmp_path / "typo.toml", env={})
    with pytest.raises(SettingsError, match="typo.toml"):
        load_settings(env={"VIBE_EDGE_CONFIG": str(tmp_path / "typo.toml")})


def test_precedence_file_then_env_then_flags(config: Path) -> None:
    config.write_text('slots = 2\nport = 9000\nkv_type = "q8_0"\nloop_guard = false\n'
                      'models_dir = "~/my-models"\n')
    s = load_settings(env={"VIBE_EDGE_CONFIG": str(config), "VIBE_EDGE_SLOTS": "3",
                           "VIBE_EDGE_PORT": "9001"},
                      overrides={"port": 9002, "slots": None, "ctx_per_slot": 4096})
    assert s.slots == 3            # env beats file; a None flag is ignored
    assert s.port == 9002          # flag beats env
    assert s.kv_type == "q8_0"     # file only
    assert s.loop_guard is False
    assert s.ctx_per_slot == 4096
    assert s.models_dir == Path("~/my-models").expanduser()
    assert s.resolved_models_dir == s.models_dir
    sources = s.sources
    assert sources["slots"] == "environment variable VIBE_EDGE_SLOTS"
    assert sources["port"] == "option --port"
    assert sources["ctx_per_slot"] == "option --ctx"
    assert sources["kv_type"] == f"config file {config}"
    assert "threads" not in sources
    described = {name: (value, src) for name, value, src in s.describe()}
    assert described["threads"] == (None, "default")
    assert described["slots"] == (3, "environment variable VIBE_EDGE_SLOTS")


def test_config_file_param_beats_env_var(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("port = 1111\n")
    b.write_text("port = 2222\n")
    assert load_settings(config_file=a, env={"VIBE_EDGE_CONFIG": str(b)}).port == 1111
    assert load_settings(env={"VIBE_EDGE_CONFIG": str(b)}).port == 2222


@pytest.mark.parametrize(("var", "raw", "field", "expected"), [
    ("VIBE_EDGE_SLOTS", "4", "slots", 4),
    ("VIBE_EDGE_SLOTS", " 6 ", "slots", 6),
    ("VIBE_EDGE_SLOTS", "auto", "slots", None),
    ("VIBE_EDGE_SLOTS", "", "slots", None),
    ("VIBE_EDGE_GPU_LAYERS", "-1", "gpu_layers", -1),
    ("VIBE_EDGE_LOOP_GUARD", "false", "loop_guard", False),
    ("VIBE_EDGE_LOOP_GUARD", "OFF", "loop_guard", False),
    ("VIBE_EDGE_LOOP_GUARD", "yes", "loop_guard", True),
    ("VIBE_EDGE_LOOP_GUARD", "1", "loop_guard", True),
    ("VIBE_EDGE_REQUEST_TIMEOUT_S", "2.5", "request_timeout_s", 2.5),
    ("VIBE_EDGE_KV_TYPE", "Q4_0", "kv_type", "q4_0"),
    ("VIBE_EDGE_LOG_LEVEL", "DEBUG", "log_level", "debug"),
    ("VIBE_EDGE_THINKING_BUDGET", "8000", "thinking_budget", 8000),
    ("VIBE_EDGE_PORT", "0", "port", 0),  # any free port
    ("VIBE_EDGE_THINKING_BUDGET", "0", "thinking_budget", 0),  # no thinking
    ("VIBE_EDGE_THINKING_BUDGET", "-1", "thinking_budget", -1),  # no budget
    ("VIBE_EDGE_MODEL", "vibethinker-q4", "model", "vibethinker-q4"),
    ("VIBE_EDGE_MODELS_DIR", "/srv/models", "models_dir", Path("/srv/models")),
    ("VIBE_EDGE_SPEC", "false", "spec", False),
    ("VIBE_EDGE_SPEC_MAX_DRAFT", "5", "spec_max_draft", 5),
])
def test_env_values_are_coerced(tmp_path: Path, var: str, raw: str, field: str, expected) -> None:
    s = load_settings(env={var: raw, "VIBE_EDGE_CONFIG": _empty_config(tmp_path)})
    assert getattr(s, field) == expected
    assert s.sources[field] == f"environment variable {var}"


def _empty_config(tmp_path: Path) -> str:
    path = tmp_path / "empty.toml"
    path.write_text("")
    return str(path)


@pytest.mark.parametrize(("var", "raw", "expected_words"), [
    ("VIBE_EDGE_SLOTS", "0", "from 1 to 256"),
    ("VIBE_EDGE_SLOTS", "four", "from 1 to 256"),
    ("VIBE_EDGE_SLOTS", "2.5", "from 1 to 256"),
    ("VIBE_EDGE_PORT", "70000", "1 to 65535"),
    ("VIBE_EDGE_PORT", "auto", "1 to 65535"),  # port is not optional
    ("VIBE_EDGE_KV_TYPE", "f32", "f16, q8_0, q4_0"),
    ("VIBE_EDGE_LOOP_GUARD", "maybe", "true or false"),
    ("VIBE_EDGE_REQUEST_TIMEOUT_S", "-1", "> 0"),
    ("VIBE_EDGE_REQUEST_TIMEOUT_S", "nan", "> 0"),
    ("VIBE_EDGE_GPU_LAYERS", "-2", "-1 for all"),
    ("VIBE_EDGE_THINKING_BUDGET", "-2", "-1 for no budget"),
    ("VIBE_EDGE_LOG_LEVEL", "loud", "warning"),
    ("VIBE_EDGE_CTX_PER_SLOT", "100", "256"),
    ("VIBE_EDGE_SPEC", "sometimes", "true or false"),
    ("VIBE_EDGE_SPEC_MAX_DRAFT", "0", "from 1 to 16"),
    ("VIBE_EDGE_SPEC_NGRAM_MAX", "9", "from 1 to 8"),
])
def test_bad_env_value_names_source_field_value_and_expectation(
        tmp_path: Path, var: str, raw: str, expected_words: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env={var: raw, "VIBE_EDGE_CONFIG": _empty_config(tmp_path)})
    msg = err.value.message
    field = var.removeprefix("VIBE_EDGE_").lower()
    assert var in msg and field in msg and repr(raw) in msg and expected_words in msg
    assert err.value.param == field


def test_bad_file_value_names_the_file(config: Path) -> None:
    config.write_text("slots = true\n")  # a bool is not a slot count
    with pytest.raises(SettingsError) as err:
        load_settings(config_file=config, env={})
    assert str(config) in err.value.message and "slots" in err.value.message


def test_unknown_file_key_names_key_file_and_valid_keys(config: Path) -> None:
    config.write_text("slots = 2\nslot = 3\n")
    with pytest.raises(SettingsError) as err:
        load_settings(config_file=config, env={})
    assert "'slot'" in err.value.message and str(config) in err.value.message
    assert "slots" in err.value.hint and "ctx_per_slot" in err.value.hint


def test_invalid_toml(config: Path) -> None:
    config.write_text("slots = = 2\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config_file=config, env={})


def test_bad_flag_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env={"VIBE_EDGE_CONFIG": _empty_config(tmp_path)}, overrides={"ctx_per_slot": 10})
    assert "--ctx" in err.value.message
    with pytest.raises(SettingsError, match="unknown setting 'nope'"):
        load_settings(env={"VIBE_EDGE_CONFIG": _empty_config(tmp_path)}, overrides={"nope": 1})


def test_unrelated_env_vars_are_ignored(tmp_path: Path) -> None:
    s = load_settings(env={"VIBE_EDGE_CONFIG": _empty_config(tmp_path), "VIBE_EDGE_API_KEY": "x",
                           "SLOTS": "9"})
    assert s == Settings()


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(SettingsError, match="slots"):
        Settings(slots=0)
    s = dataclasses.replace(Settings(), kv_type="Q8_0")
    assert s.kv_type == "q8_0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_plan_overrides_match_make_plan_keywords() -> None:
    params = inspect.signature(make_plan).parameters
    overrides = Settings(slots=2, ctx_per_slot=4096).plan_overrides()
    assert set(overrides) <= set(params)
    assert overrides["slots"] == 2 and overrides["ctx_per_slot"] == 4096


def test_env_var_names() -> None:
    assert env_var_name("ctx_per_slot") == "VIBE_EDGE_CTX_PER_SLOT"


def test_default_models_dir_prefers_the_checkout(tmp_path: Path, monkeypatch) -> None:
    fake_pkg = tmp_path / "checkout" / "vibe_edge"
    fake_pkg.mkdir(parents=True)
    monkeypatch.setattr(settings_mod, "__file__", str(fake_pkg / "settings.py"))
    monkeypatch.setattr(settings_mod.platformdirs, "user_data_dir", lambda app: str(tmp_path / "data"))
    assert default_models_dir() == tmp_path / "data" / "models"   # no models/ beside the package
    (tmp_path / "checkout" / "models").mkdir()
    assert default_models_dir() == tmp_path / "checkout" / "models"
    assert Settings().resolved_models_dir == tmp_path / "checkout" / "models"


def test_serve_knobs_are_settings_too(tmp_path: Path) -> None:
    """CORS, the body limit, the grace period and keep-alives come from the config file and the
    environment like every other knob (and so `doctor --json` shows them)."""
    from vibe_edge.server import ServerConfig

    cfg = tmp_path / "config.toml"
    cfg.write_text('cors_origins = ["http://localhost:3000"]\nmax_body_bytes = 4096\ngrace_s = 0\n')
    s = load_settings(config_file=cfg, env={"VIBE_EDGE_KEEPALIVE_S": "2.5", "VIBE_EDGE_MAX_TOKENS": "300"})
    assert s.cors_origins == ("http://localhost:3000",) and s.max_body_bytes == 4096
    assert (s.grace_s, s.keepalive_s, s.max_tokens) == (0.0, 2.5, 300)
    config = ServerConfig.from_settings(s)
    assert (config.cors_origins, config.max_body_bytes, config.grace_s, config.keepalive_s,
            config.max_tokens) == (("http://localhost:3000",), 4096, 0.0, 2.5, 300)
    env = load_settings(config_file=cfg, env={"VIBE_EDGE_CORS_ORIGINS": "http://a, http://b"})
    assert env.cors_origins == ("http://a", "http://b")
    with pytest.raises(SettingsError, match="max_body_bytes"):
        load_settings(config_file=cfg, env={"VIBE_EDGE_MAX_BODY_BYTES": "10"})
    with pytest.raises(SettingsError, match="keepalive_s"):
        load_settings(config_file=cfg, env={"VIBE_EDGE_KEEPALIVE_S": "0"})


def test_spec_ngram_sizes_must_be_ordered(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="spec_ngram_min .* larger than spec_ngram_max") as err:
        load_settings(env={"VIBE_EDGE_SPEC_NGRAM_MIN": "5", "VIBE_EDGE_SPEC_NGRAM_MAX": "3",
                           "VIBE_EDGE_CONFIG": _empty_config(tmp_path)})
    assert "VIBE_EDGE_SPEC_NGRAM_MIN" in err.value.message
