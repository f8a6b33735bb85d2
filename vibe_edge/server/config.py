"""What the server needs to know beyond the engine: security, limits, defaults for requests."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from vibe_edge.defaults import (
    DEFAULT_GRACE_S,
    DEFAULT_KEEPALIVE_S,
    DEFAULT_LOOP_GUARD,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PRESET,
    DEFAULT_RETRY_AFTER_S,
    MAX_API_KEY_BYTES,
    MIN_MAX_BODY_BYTES,
)
from vibe_edge.errors import SettingsError
from vibe_edge.settings import Settings

MAX_INSTANCE_NAME_CHARS = 200


@dataclass(frozen=True)
class ServerConfig:
    """Server behaviour. Engine settings (slots, context, threads) live in EngineConfig.

    api_keys: accepted bearer keys; empty means no authentication (loopback or socket only).
    cors_origins: allowed browser origins; empty turns CORS off.
    allowed_hosts: Host header names a keyless TCP server answers to besides loopback ones
    (127.0.0.0/8, ::1, localhost); every other Host is refused (DNS rebinding).
    default_preset: the preset whose sampling values and limits fill what a request leaves out
    (its system prompt and suffix apply when a request names a preset, or to every chat request
    when apply_preset_prompts is set - `serve` sets it when the preset was chosen explicitly).
    thinking_budget / loop_guard: server-wide defaults a request may override.
    request_timeout_s: the longest deadline a request may ask for (None: the engine's).
    max_tokens: the most tokens a request may generate, whatever it asks (None: the slot's).
    model_id: the name /v1/models reports and responses carry (None: the engine's model name).
    instance: this instance's name in the X-Vibe-Edge-Instance header of every response (None:
    no header; `serve` and BackgroundServer fill in the address they listen on).
    """

    api_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    grace_s: float = DEFAULT_GRACE_S
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    default_preset: str = DEFAULT_PRESET
    apply_preset_prompts: bool = False
    thinking_budget: int | None = None
    loop_guard: bool = DEFAULT_LOOP_GUARD
    request_timeout_s: float | None = None
    max_tokens: int | None = None
    model_id: str | None = None
    instance: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, api_keys: tuple[str, ...] = (),
                      model_id: str | None = None) -> ServerConfig:
        """`serve`'s configuration: every knob from the settings (defaults < config file <
        environment < flags), the keys from where `serve` read them."""
        return cls(api_keys=api_keys, cors_origins=settings.cors_origins,
                   max_body_bytes=settings.max_body_bytes, keepalive_s=settings.keepalive_s,
                   grace_s=settings.grace_s, default_preset=settings.preset,
                   apply_preset_prompts="preset" in settings.sources,
                   thinking_budget=settings.thinking_budget, loop_guard=settings.loop_guard,
                   request_timeout_s=settings.request_timeout_s, max_tokens=settings.max_tokens,
                   model_id=model_id, instance=settings.instance, allowed_hosts=settings.allowed_hosts)

    def __post_init__(self) -> None:
        keys = tuple(self.api_keys)
        for key in keys:
            if not isinstance(key, str) or not key.strip():
                raise SettingsError("an API key must be a non-empty string")
            if any(c.isspace() for c in key) or len(key.encode()) > MAX_API_KEY_BYTES:
                raise SettingsError("an API key must be one word (no spaces or newlines) of at most "
                                    f"{MAX_API_KEY_BYTES} bytes",
                                    hint="check the key file: one key per line")
        object.__setattr__(self, "api_keys", keys)
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        object.__setattr__(self, "allowed_hosts", tuple(h.strip().lower() for h in self.allowed_hosts))
        if self.max_body_bytes < MIN_MAX_BODY_BYTES:
            raise SettingsError(f"the request body limit must be at least {MIN_MAX_BODY_BYTES} bytes, "
                                f"got {self.max_body_bytes}")
        if not self.keepalive_s > 0:
            raise SettingsError(f"the keep-alive interval must be > 0 seconds, got {self.keepalive_s}")
        if not self.grace_s >= 0:
            raise SettingsError(f"the shutdown grace period must be >= 0 seconds, got {self.grace_s}")
        if self.thinking_budget is not None and self.thinking_budget < -1:
            raise SettingsError(f"the thinking budget must be a number of tokens (0: no thinking) or -1 for "
                                f"no budget, got {self.thinking_budget}")
        if self.instance is not None and not (
                0 < len(self.instance) <= MAX_INSTANCE_NAME_CHARS and self.instance.isascii()
                and self.instance.isprintable() and self.instance.strip() == self.instance):
            raise SettingsError(f"the instance name {self.instance!r} cannot go in a header",
                                hint=f"use printable ASCII, at most {MAX_INSTANCE_NAME_CHARS} "
                                     "characters, no leading or trailing spaces", param="instance")
        from vibe_edge.presets import get_preset  # noqa: PLC0415 (import cost at startup only)

        try:
            get_preset(self.default_preset)
        except Exception as exc:
            raise SettingsError(str(exc), param="preset") from None


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and "localhost"."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so treat it as exposed


def read_api_keys(keys: Sequence[str] = (), key_file: str | None = None) -> tuple[str, ...]:
    """Keys from the command line plus a file (one per line, '#' comments and blanks skipped)."""
    found = [k.strip() for k in keys if k is not None]
    if key_file:
        try:
            text = open(key_file, encoding="utf-8").read()  # noqa: SIM115
        except OSError as exc:
            raise SettingsError(f"cannot read the API key file {key_file}: {exc.strerror or exc}",
                                hint="give a readable file with one key per line") from None
        lines = [line.strip() for line in text.splitlines()]
        file_keys = [line for line in lines if line and not line.startswith("#")]
        if not file_keys:
            raise SettingsError(f"the API key file {key_file} holds no key",
                                hint="write one key per line")
        found.extend(file_keys)
    return tuple(dict.fromkeys(found))
