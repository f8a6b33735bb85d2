"""vibe-edge's settings: documented defaults, then a TOML file, then environment, then flags.

Later sources win. Every value is coerced and range-checked where it enters, so a mistake is
reported with its source ("VIBE_EDGE_SLOTS", "/home/me/.config/vibe-edge/config.toml", "--ctx"),
the field, what was given and what is expected, instead of surfacing later as a llama.cpp failure.

`None` in an optional field means "decide automatically": the hardware plan fills it in.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs

from vibe_edge import tomlfile
from vibe_edge.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_GRACE_S,
    DEFAULT_HOST,
    DEFAULT_KEEPALIVE_S,
    DEFAULT_LOOP_GUARD,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_LOG_LEVEL,
    DEFAULT_PORT,
    DEFAULT_PRESET,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_SPEC,
    DEFAULT_SPEC_MAX_DRAFT,
    DEFAULT_SPEC_NGRAM_MAX,
    DEFAULT_SPEC_NGRAM_MIN,
    KV_TYPES,
    LOG_LEVELS,
    MAX_BATCH_SIZE,
    MAX_CTX_PER_SLOT,
    MIN_BATCH_SIZE,
    MIN_CTX_PER_SLOT,
    MIN_MAX_BODY_BYTES,
    MAX_SPEC_DRAFT,
    MAX_SPEC_NGRAM,
)
from vibe_edge.errors import SettingsError

__all__ = [
    "APP_NAME",
    "CONFIG_ENV_VAR",
    "ENV_PREFIX",
    "KV_TYPES",
    "LOG_LEVELS",
    "FLAG_NAMES",
    "Settings",
    "SETTING_NAMES",
    "load_settings",
    "default_config_file",
    "default_models_dir",
    "env_var_name",
    "flag_name",
]

APP_NAME = "vibe-edge"
CONFIG_ENV_VAR = "VIBE_EDGE_CONFIG"
ENV_PREFIX = "VIBE_EDGE_"
# Command-line spellings that differ from "--" + the field name with dashes; used only to name
# the source of a bad value, so keep in step with the CLI.
FLAG_NAMES: Mapping[str, str] = MappingProxyType({
    "ctx_per_slot": "--ctx", "request_timeout_s": "--timeout", "cors_origins": "--cors-origin",
    "max_body_bytes": "--max-body", "grace_s": "--grace", "keepalive_s": "--keepalive"})

_AUTO_WORDS = ("", "auto", "none")
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """All user-tunable settings. Build with load_settings(); Settings() alone gives the defaults."""

    # Where models (GGUF + manifest) live; None: default_models_dir().
    models_dir: Path | None = None
    # Model to serve when none is named: a models/ name or a .gguf path; None: the registry picks.
    model: str | None = None
    # CPU threads for decoding; None: the plan picks the usable physical cores.
    threads: int | None = None
    # Layers offloaded to the GPU: 0 CPU only, -1 all; None: the plan decides from free memory.
    gpu_layers: int | None = None
    # Sequences decoded together (parallel requests); None: the plan's default for the hardware.
    slots: int | None = None
    # KV-cache tokens per slot (prompt + thinking + answer); None: as many as memory allows.
    ctx_per_slot: int | None = None
    # KV-cache element type, one of KV_TYPES; None: f16 unless memory forces q8_0.
    kv_type: str | None = None
    # Prompt tokens evaluated per step: larger prefills faster but needs a bigger compute buffer.
    batch_size: int = DEFAULT_BATCH_SIZE
    # Requests waiting for a free slot before new ones are refused (HTTP 429).
    queue_size: int = DEFAULT_QUEUE_SIZE
    # A request still running after this many seconds is ended (long reasoning takes minutes).
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    # Sampling preset applied when a request does not set its own values.
    preset: str = DEFAULT_PRESET
    # Maximum thinking tokens before the think block is closed; None: the preset's; 0: no
    # thinking; -1: no budget (as llama.cpp's --reasoning-budget).
    thinking_budget: int | None = None
    # Detect repetition loops in the thinking and end them (VibeThinker can loop forever).
    loop_guard: bool = DEFAULT_LOOP_GUARD
    # The most tokens one request may generate (thinking included); None: what the slot holds.
    max_tokens: int | None = None
    # Speculative decoding: draft tokens from n-grams of the slot's own context and verify them
    # in the step's batch (requests may turn it on or off); output is unchanged. On: drafts are
    # fed only where the measured step costs say they pay (see defaults.DEFAULT_SPEC).
    spec: bool = DEFAULT_SPEC
    # The most tokens drafted per slot and step.
    spec_max_draft: int = DEFAULT_SPEC_MAX_DRAFT
    # The shortest and longest context suffix (in tokens) looked up to draft from.
    spec_ngram_min: int = DEFAULT_SPEC_NGRAM_MIN
    spec_ngram_max: int = DEFAULT_SPEC_NGRAM_MAX
    # Address the OpenAI-compatible server binds to; loopback unless exposed on purpose.
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Host names (besides loopback) a server without an API key answers to, e.g. a name in
    # /etc/hosts for this machine; other Host headers are refused (DNS-rebinding defence).
    allowed_hosts: tuple[str, ...] = ()
    # Browser origins the server allows (CORS); empty: CORS off. In the environment, comma-separated.
    cors_origins: tuple[str, ...] = ()
    # The largest request body the server accepts, in bytes (413 beyond).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # On SIGTERM the server lets running requests finish this many seconds, then cancels them.
    grace_s: float = DEFAULT_GRACE_S
    # A streamed response sends an SSE comment after this many seconds without output.
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    # This server's name in the X-Vibe-Edge-Instance header; None: the address it listens on.
    instance: str | None = None
    # Python logging level name, one of LOG_LEVELS.
    log_level: str = DEFAULT_LOG_LEVEL
    # Where each non-default value came from: field -> "env VIBE_EDGE_SLOTS" etc. Not a setting.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Direct construction (tests, dataclasses.replace) gets the same checks as loading.
        for name in SETTING_NAMES:
            value = getattr(self, name)
            checked = _coerce(name, value, "Settings()")
            if checked is not value:
                object.__setattr__(self, name, checked)
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))
        if self.spec_ngram_min > self.spec_ngram_max:
            source = self.sources.get("spec_ngram_min") or self.sources.get("spec_ngram_max") or "Settings()"
            raise SettingsError(f"{source}: spec_ngram_min ({self.spec_ngram_min}) is larger than "
                                f"spec_ngram_max ({self.spec_ngram_max})",
                                hint="the shortest n-gram must not be longer than the longest",
                                param="spec_ngram_min")

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else default_models_dir()

    def describe(self) -> list[tuple[str, Any, str]]:
        """(field, value, source) for every setting; source is "default" when nothing set it."""
        return [(name, getattr(self, name), self.sources.get(name, "default"))
                for name in SETTING_NAMES]

    def plan_overrides(self) -> dict[str, Any]:
        """The keyword arguments hardware.make_plan takes from the settings."""
        return {"threads": self.threads, "gpu_layers": self.gpu_layers, "slots": self.slots,
                "ctx_per_slot": self.ctx_per_slot, "kv_type": self.kv_type,
                "batch_size": self.batch_size}


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings) if f.name != "sources")


def env_var_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def default_config_file(env: Mapping[str, str] | None = None) -> Path:
    """$VIBE_EDGE_CONFIG if set, else config.toml in the user's config directory."""
    env = os.environ if env is None else env
    named = env.get(CONFIG_ENV_VAR)
    if named:
        return Path(named).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_models_dir() -> Path:
    """<checkout>/models when running from a source checkout that has one, else the user data dir."""
    checkout_models = Path(__file__).resolve().parent.parent / "models"
    if checkout_models.is_dir():
        return checkout_models
    return Path(platformdirs.user_data_dir(APP_NAME)) / "models"


def load_settings(*, config_file: Path | None = None, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Defaults < config file < VIBE_EDGE_* environment < overrides (CLI flags; None ignored).

    A missing config file at the default location is fine; one named explicitly (config_file or
    $VIBE_EDGE_CONFIG) must exist, because a typo there would otherwise be silently ignored.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    explicit = config_file is not None or bool(env.get(CONFIG_ENV_VAR))
    path = Path(config_file).expanduser() if config_file is not None else default_config_file(env)
    for name, value in _read_config(path, explicit).items():
        values[name] = _coerce(name, value, f"config file {path}")
        sources[name] = f"config file {path}"

    for name in SETTING_NAMES:
        var = env_var_name(name)
        if var in env:
            values[name] = _coerce(name, env[var], f"environment variable {var}")
            sources[name] = f"environment variable {var}"

    for name, value in (overrides or {}).items():
        if name not in SETTING_NAMES:
            raise SettingsError(f"unknown setting {name!r} passed as an override",
                                hint=f"valid settings: {', '.join(SETTING_NAMES)}")
        if value is None:
            continue
        values[name] = _coerce(name, value, f"option {flag_name(name)}")
        sources[name] = f"option {flag_name(name)}"

    return Settings(**values, sources=sources)


def _read_config(path: Path, explicit: bool) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise SettingsError(f"config file {path} does not exist",
                                hint=f"create it, or unset {CONFIG_ENV_VAR} / drop the option that "
                                "names it") from None
        return {}
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = tomlfile.loads(raw.decode("utf-8"), source=f"config file {path}")
    except (UnicodeDecodeError, tomlfile.TOMLDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}",
                            hint="fix the file; each line is `name = value`, e.g. `slots = 4`") from exc
    unknown = [key for key in data if key not in SETTING_NAMES]
    if unknown:
        raise SettingsError(
            f"config file {path}: unknown setting {unknown[0]!r}",
            hint=f"valid settings: {', '.join(SETTING_NAMES)}",
            param=unknown[0],
        )
    return data


# -- coercion and validation -----------------------------------------------------------------------

def _bad(source: str, name: str, given: Any, expected: str) -> SettingsError:
    return SettingsError(f"{source}: {name} = {given!r} is not valid; expected {expected}", param=name)


def _to_int(source: str, name: str, value: Any, expected: str) -> int:
    if isinstance(value, bool):  # bool is an int subclass; `slots = true` is a mistake
        raise _bad(source, name, value, expected)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _bad(source, name, value, expected)


def _int_check(low: int | None, high: int | None, what: str, *, optional: bool
               ) -> Callable[[str, str, Any], int | None]:
    expected = what + (' or "auto"' if optional else "")

    def check(source: str, name: str, value: Any) -> int | None:
        if optional and (value is None or (isinstance(value, str) and value.strip().lower() in _AUTO_WORDS)):
            return None
        number = _to_int(source, name, value, expected)
        if (low is not None and number < low) or (high is not None and number > high):
            raise _bad(source, name, value, expected)
        return number

    return check


def _seconds_check(*, zero_ok: bool) -> Callable[[str, str, Any], float]:
    expected = "a number of seconds >= 0" if zero_ok else "a number of seconds > 0"

    def check(source: str, name: str, value: Any) -> float:
        if isinstance(value, bool):
            raise _bad(source, name, value, expected)
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise _bad(source, name, value, expected) from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
            raise _bad(source, name, value, expected)
        return number

    return check


def _texts_check(source: str, name: str, value: Any) -> tuple[str, ...]:
    """A list of strings; from the environment, one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise _bad(source, name, value, "a list of strings (comma-separated in the environment)")
    return tuple(i.strip() for i in items if i.strip())


def _bool_check(source: str, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise _bad(source, name, value, "true or false (1/0, yes/no, on/off)")


def _choice_check(choices: tuple[str, ...], *, optional: bool) -> Callable[[str, str, Any], str | None]:
    expected = "one of " + ", ".join(choices) + (' or "auto"' if optional else "")

    def check(source: str, name: str, value: Any) -> str | None:
        if optional and (value is None or (isinstance(value, str) and value.strip().lower() in _AUTO_WORDS)):
            return None
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise _bad(source, name, value, expected)

    return check


def _text_check(*, optional: bool) -> Callable[[str, str, Any], str | None]:
    def check(source: str, name: str, value: Any) -> str | None:
        if optional and (value is None or (isinstance(value, str) and value.strip().lower() in _AUTO_WORDS)):
            return None
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise _bad(source, name, value, "a non-empty string")

    return check


def _hosts_check(source: str, name: str, value: Any) -> tuple[str, ...]:
    """Host names: a list (TOML) or a comma-separated string (environment)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(h, str) for h in items):
        raise _bad(source, name, value, "host names, e.g. myhost.lan,other.lan")
    hosts = tuple(h.strip().lower() for h in items if h.strip())
    if any(c in h for h in hosts for c in "/@ \t"):
        raise _bad(source, name, value, "host names without scheme, path or spaces")
    return hosts


def _path_check(source: str, name: str, value: Any) -> Path | None:
    if value is None or (isinstance(value, str) and value.strip() in _AUTO_WORDS):
        return None
    if isinstance(value, (str, os.PathLike)):
        return Path(value).expanduser()
    raise _bad(source, name, value, "a directory path")


_CHECKS: dict[str, Callable[[str, str, Any], Any]] = {
    "models_dir": _path_check,
    "model": _text_check(optional=True),
    "threads": _int_check(1, 1024, "an integer from 1 to 1024", optional=True),
    "gpu_layers": _int_check(-1, None, "an integer >= 0, or -1 for all layers", optional=True),
    "slots": _int_check(1, 256, "an integer from 1 to 256", optional=True),
    "ctx_per_slot": _int_check(MIN_CTX_PER_SLOT, MAX_CTX_PER_SLOT,
                               f"an integer from {MIN_CTX_PER_SLOT} to {MAX_CTX_PER_SLOT}", optional=True),
    "kv_type": _choice_check(KV_TYPES, optional=True),
    # The engine's own floor: a smaller batch is refused when the engine starts, so say it here.
    "batch_size": _int_check(MIN_BATCH_SIZE, MAX_BATCH_SIZE,
                             f"an integer from {MIN_BATCH_SIZE} to {MAX_BATCH_SIZE}", optional=False),
    "queue_size": _int_check(1, 100_000, "an integer from 1 to 100000", optional=False),
    "request_timeout_s": _seconds_check(zero_ok=False),
    "preset": _text_check(optional=False),
    "thinking_budget": _int_check(-1, None, 'an integer >= 0 (tokens; 0: no thinking), or -1 for no budget',
                                  optional=True),
    "loop_guard": _bool_check,
    "max_tokens": _int_check(1, None, "a number of tokens >= 1", optional=True),
    "spec": _bool_check,
    "spec_max_draft": _int_check(1, MAX_SPEC_DRAFT, f"an integer from 1 to {MAX_SPEC_DRAFT}", optional=False),
    "spec_ngram_min": _int_check(1, MAX_SPEC_NGRAM, f"an integer from 1 to {MAX_SPEC_NGRAM}", optional=False),
    "spec_ngram_max": _int_check(1, MAX_SPEC_NGRAM, f"an integer from 1 to {MAX_SPEC_NGRAM}", optional=False),
    "host": _text_check(optional=False),
    # 0 asks the system for any free port; `serve` prints the one it got.
    "port": _int_check(0, 65535, "a port number from 1 to 65535, or 0 for any free port", optional=False),
    "allowed_hosts": _hosts_check,
    "cors_origins": _texts_check,
    "max_body_bytes": _int_check(MIN_MAX_BODY_BYTES, None, f"a number of bytes >= {MIN_MAX_BODY_BYTES}",
                                 optional=False),
    "grace_s": _seconds_check(zero_ok=True),
    "keepalive_s": _seconds_check(zero_ok=False),
    "instance": _text_check(optional=True),
    "log_level": _choice_check(LOG_LEVELS, optional=False),
}


def _coerce(name: str, value: Any, source: str) -> Any:
    return _CHECKS[name](source, name, value)
