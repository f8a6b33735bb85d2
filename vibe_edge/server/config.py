"""What the server needs to know beyond the engine: security, limits, defaults for requests."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from vibe_edge.errors import SettingsError

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024   # a 40k-token conversation is ~200 KB of text
DEFAULT_KEEPALIVE_S = 5.0                  # SSE comment after this long without output
DEFAULT_GRACE_S = 10.0                     # SIGTERM: let in-flight work finish this long
DEFAULT_RETRY_AFTER_S = 2                  # Retry-After on 429 and 503
MAX_API_KEY_BYTES = 4096
MAX_INSTANCE_NAME_CHARS = 200


@dataclass(frozen=True)
class ServerConfig:
    """Server behaviour. Engine settings (slots, context, threads) live in EngineConfig.

    api_keys: accepted bearer keys; empty means no authentication (loopback or socket only).
    cors_origins: allowed browser origins; empty turns CORS off.
    default_preset: the preset whose sampling values and limits fill what a request leaves out
    (its system prompt and suffix apply when a request names a preset, or to every chat request
    when apply_preset_prompts is set - `serve` sets it when the preset was chosen explicitly).
    thinking_budget / loop_guard: server-wide defaults a request may override.
    request_timeout_s: the longest deadline a request may ask for (None: the engine's).
    model_id: the name /v1/models reports and responses carry (None: the engine's model name).
    instance: this instance's name in the X-Vibe-Edge-Instance header of every response (None:
    no header; `serve` and BackgroundServer fill in the address they listen on).
    """

    api_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    grace_s: float = DEFAULT_GRACE_S
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    default_preset: str = "math"
    apply_preset_prompts: bool = False
    thinking_budget: int | None = None
    loop_guard: bool = True
    request_timeout_s: float | None = None
    model_id: str | None = None
    instance: str | None = None

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
        if self.max_body_bytes < 1024:
            raise SettingsError(f"the request body limit must be at least 1024 bytes, got {self.max_body_bytes}")
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
        from vibe_edge.chat.presets import get_preset  # noqa: PLC0415 (import cost at startup only)

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
