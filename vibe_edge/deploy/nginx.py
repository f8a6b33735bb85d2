"""`vibe-edge deploy nginx`: the nginx configuration for N instances, written from their addresses.

    config = NginxConfig(backends=("127.0.0.1:8081", "127.0.0.1:8082"), listen="127.0.0.1:8080")
    render(config)              {"nginx.conf": ..., "vibe-edge-http.conf": ..., "vibe-edge-server.conf": ...}
    write(config, out_dir)      the three files (each replaced whole), plus logs/ and temp/

nginx.conf is complete: `nginx -p DIR -c DIR/nginx.conf` runs it as it is, with everything it
writes under DIR. The two parts are the same text for an existing nginx: the http part goes in
`http { }`, the server part in a `server { }`. Routing, retries and timeouts are explained in the
templates' comments and in docs/DEPLOY.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from vibe_edge.deploy.files import templates, write_files
from vibe_edge.deploy.routing import MAX_KEY_CHARS
from vibe_edge.errors import SettingsError

DEFAULT_LISTEN = "127.0.0.1:8080"
# serve's --max-body and Retry-After defaults (vibe_edge/server/config.py; a test keeps them
# equal). Not imported: the server package loads llama.cpp, which writing a file does not need.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_RETRY_AFTER_S = 2
# Three failures (connection errors, 429s, 503s) within fail_timeout take an instance out of
# rotation for fail_timeout; then nginx tries it again, and one success brings it back.
DEFAULT_MAX_FAILS = 3
DEFAULT_FAIL_TIMEOUT_S = 10
DEFAULT_CONNECT_TIMEOUT_S = 2      # instances are on the same machine or LAN
# Above serve's default --timeout (1800 s), so a long non-streaming answer is never cut (nor
# retried) by nginx.
DEFAULT_READ_TIMEOUT_S = 3600
DEFAULT_KEEPALIVE = 16             # idle connections per worker kept to the instances
# Below serve's own keep-alive (30 s): nginx closes an idle connection before the instance
# does, so it never sends a request into a connection the instance is closing.
DEFAULT_KEEPALIVE_TIMEOUT_S = 20
# The body stays in memory up to this size, which is what lets the `user` field be read; a
# 40,000-token conversation is about 200 KB.
DEFAULT_BODY_BUFFER = "1m"

CONF_NAME = "nginx.conf"
HTTP_PART_NAME = "vibe-edge-http.conf"
SERVER_PART_NAME = "vibe-edge-server.conf"
PREFIX_DIRS = ("logs", "temp")

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
_UNIX_PATH = re.compile(r"^/[^\s;{}'\"\\$#]+$")   # nothing that could end or extend an nginx directive


def parse_address(text: str, *, what: str = "backend") -> str:
    """host:port, [ipv6]:port or unix:/absolute/path, checked and in nginx's spelling.

    Only characters an address can hold get through: the value is written into a config file,
    and a stray `;` or `}` would change what nginx does."""
    value = text.strip()
    hint = f"give the {what} as host:port (127.0.0.1:8081, [::1]:8081, jetson-2.lan:8080)" + (
        " or unix:/path/to.sock" if what == "backend" else "")
    if value.startswith("unix:"):
        if what != "backend":
            raise SettingsError(f"nginx cannot listen for clients on a Unix socket here: {value!r}",
                                hint=hint, param=what)
        path = value[len("unix:"):]
        if not _UNIX_PATH.match(path):
            raise SettingsError(f"the {what} {value!r} is not an absolute socket path without "
                                "spaces or special characters", hint=hint, param=what)
        return f"unix:{path}"
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SettingsError(f"the {what} {text!r} has no valid port", hint=hint, param=what)
    if host.startswith("[") and host.endswith("]"):
        try:
            ip = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SettingsError(f"the {what} {text!r} has an invalid IPv6 address", hint=hint,
                                param=what) from None
        return f"[{ip.compressed}]:{int(port)}"
    try:
        return f"{ipaddress.IPv4Address(host)}:{int(port)}"
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise SettingsError(f"the {what} {text!r} is not a host name or IP address", hint=hint,
                            param=what)
    return f"{host.lower()}:{int(port)}"


def _size(n_bytes: int) -> str:
    """nginx size syntax: 8388608 -> 8m."""
    for unit, factor in (("m", 1 << 20), ("k", 1 << 10)):
        if n_bytes % factor == 0:
            return f"{n_bytes // factor}{unit}"
    return str(n_bytes)


@dataclass(frozen=True)
class NginxConfig:
    """What the generated configuration needs to know. Times are whole seconds.

    backends: the instances (each `vibe-edge serve`), host:port or unix:/path.
    listen: where nginx takes client requests.
    tries: how many instances one request may be sent to (None: all of them).
    max_body_bytes: the largest request nginx passes on; keep it equal to serve's --max-body.
    """

    backends: tuple[str, ...]
    listen: str = DEFAULT_LISTEN
    max_fails: int = DEFAULT_MAX_FAILS
    fail_timeout_s: int = DEFAULT_FAIL_TIMEOUT_S
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: int = DEFAULT_READ_TIMEOUT_S
    keepalive: int = DEFAULT_KEEPALIVE
    keepalive_timeout_s: int = DEFAULT_KEEPALIVE_TIMEOUT_S
    tries: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    servers: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.backends:
            raise SettingsError("no backends given", hint="name each instance with --backend host:port",
                                param="backend")
        servers = tuple(parse_address(b) for b in self.backends)
        duplicates = sorted({s for s in servers if servers.count(s) > 1})
        if duplicates:
            raise SettingsError(f"the backend {duplicates[0]} is given twice",
                                hint="name each instance once", param="backend")
        object.__setattr__(self, "servers", servers)
        object.__setattr__(self, "listen", parse_address(self.listen, what="listen address"))
        for name in ("max_fails", "fail_timeout_s", "connect_timeout_s", "read_timeout_s",
                     "keepalive", "keepalive_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name} must be a whole number >= 1, got {value!r}", param=name)
        if self.tries is not None and not (isinstance(self.tries, int) and self.tries >= 1):
            raise SettingsError(f"tries must be a whole number >= 1, got {self.tries!r}", param="tries")
        if self.max_body_bytes < 1024:
            raise SettingsError(f"the body limit must be at least 1024 bytes, got {self.max_body_bytes}",
                                param="max_body")

    @property
    def exposed(self) -> bool:
        """True when clients beyond this machine can reach nginx."""
        host = self.listen.rpartition(":")[0].strip("[]")
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return True  # a host name may resolve to anything

    def command(self) -> str:
        """The `vibe-edge deploy nginx` command that writes this configuration."""
        parts = ["vibe-edge deploy nginx"]
        parts += [f"--backend {b}" for b in self.servers]
        defaults = NginxConfig(backends=self.backends)
        if self.listen != DEFAULT_LISTEN:
            parts.append(f"--listen {self.listen}")
        for flag, name in (("--max-fails", "max_fails"), ("--fail-timeout", "fail_timeout_s"),
                           ("--connect-timeout", "connect_timeout_s"),
                           ("--read-timeout", "read_timeout_s"), ("--keepalive", "keepalive"),
                           ("--keepalive-timeout", "keepalive_timeout_s"), ("--tries", "tries"),
                           ("--max-body", "max_body_bytes")):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                parts.append(f"{flag} {value}")
        return " ".join(parts)


def render(config: NginxConfig) -> dict[str, str]:
    """The three files' text, by file name."""
    env = templates()
    values = {
        "servers": config.servers,
        "listen": config.listen,
        "max_fails": config.max_fails,
        "fail_timeout": f"{config.fail_timeout_s}s",
        "connect_timeout": f"{config.connect_timeout_s}s",
        "read_timeout": f"{config.read_timeout_s}s",
        "keepalive": config.keepalive,
        "keepalive_timeout": f"{config.keepalive_timeout_s}s",
        "tries": config.tries or len(config.servers),
        "max_body": _size(config.max_body_bytes),
        "body_buffer": DEFAULT_BODY_BUFFER,
        "retry_after": DEFAULT_RETRY_AFTER_S,
        "max_key_chars": MAX_KEY_CHARS,
        "command": config.command(),
    }
    http_part = env.get_template(HTTP_PART_NAME + ".j2").render(values)
    server_part = env.get_template(SERVER_PART_NAME + ".j2").render(values)
    full = env.get_template(CONF_NAME + ".j2").render(values, http_part=http_part.rstrip("\n"),
                                                      server_part=server_part.rstrip("\n"))
    # indent() leaves blank lines indented: strip trailing spaces so the files diff cleanly.
    full = "\n".join(line.rstrip() for line in full.splitlines()) + "\n"
    return {CONF_NAME: full, HTTP_PART_NAME: http_part, SERVER_PART_NAME: server_part}


def write(config: NginxConfig, out_dir: str | Path) -> list[Path]:
    """The configuration files in out_dir, and the logs/ and temp/ folders nginx.conf uses."""
    out = Path(out_dir)
    written = write_files(render(config), out)
    for name in PREFIX_DIRS:
        (out / name).mkdir(exist_ok=True)
    return written


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def check(out_dir: str | Path, binary: str | None = None) -> tuple[bool, str]:
    """`nginx -t` on the written nginx.conf: (ok, what nginx said)."""
    binary = binary or nginx_binary()
    if binary is None:
        return False, "nginx is not installed"
    prefix = Path(out_dir).absolute()
    proc = subprocess.run([binary, "-t", "-q", "-p", f"{prefix}/", "-c", str(prefix / CONF_NAME),
                           "-e", str(prefix / "logs" / "error.log")],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()
