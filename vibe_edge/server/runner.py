"""Serving: bind the socket, start uvicorn, load the model behind it, shut down gracefully.

    run_server(...)        the `vibe-edge serve` path: main thread, signal handling, exit code
    BackgroundServer(...)  the same server in a thread (tests, embedding); .stop() to end it

Unix sockets are created owner-only (0600), a stale one (nobody listening) is replaced, a live
one is never touched, and ours is removed on exit - only if it is still ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from vibe_edge.engine import Engine
from vibe_edge.errors import SettingsError, VibeEdgeError
from vibe_edge.server.app import create_app
from vibe_edge.server.config import ServerConfig, is_loopback_host
from vibe_edge.server.host import ModelHost

log = logging.getLogger("vibe_edge.server")

UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included
SHUTDOWN_MARGIN_S = 5.0  # uvicorn waits this much beyond the grace period before cutting streams


class ServerStartError(VibeEdgeError):
    status, type, code = 500, "server_error", "cannot_listen"


@dataclass
class Listener:
    sock: socket.socket
    url: str                      # http://127.0.0.1:8080 or unix:/path/to.sock
    path: Path | None = None      # for a Unix socket
    ident: tuple[int, int, int] | None = None  # (dev, ino, ctime_ns) of the socket we created

    @property
    def address(self) -> str:
        """host:port, or the socket's path: the instance's default name."""
        return str(self.path) if self.path is not None else self.url.removeprefix("http://")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.path is not None and self.ident is not None:
            remove_own_socket(self.path, self.ident)


def check_exposure(host: str, api_keys: tuple[str, ...]) -> None:
    """Refuse to listen beyond loopback without an API key."""
    if not is_loopback_host(host) and not api_keys:
        raise SettingsError(
            f"refusing to listen on {host}: any machine that can reach it could use the model",
            hint="set an API key (--api-key KEY or --api-key-file FILE) to expose the server, "
                 "or keep the default --host 127.0.0.1",
            param="host",
        )


def bind_tcp(host: str, port: int) -> Listener:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot resolve the host {host!r}: {exc.strerror}",
                               hint="use an IP address such as 127.0.0.1 or 0.0.0.0") from None
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        hint = ("another program uses this port: stop it or pick another with --port"
                if exc.errno == errno.EADDRINUSE else "check --host and --port")
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                               hint=hint) from None
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
    return Listener(sock, f"http://{shown}:{bound[1]}")


def _socket_is_live(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        # EAGAIN: a listener whose backlog is full is still a listener.
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ETIMEDOUT)
    finally:
        probe.close()


def bind_unix(path: str | Path) -> Listener:
    path = Path(path).expanduser().absolute()
    if len(os.fsencode(str(path))) > UNIX_PATH_MAX:
        raise ServerStartError(f"the socket path {path} is too long for a Unix socket "
                               f"(at most {UNIX_PATH_MAX} bytes)", hint="use a shorter path")
    if not path.parent.is_dir():
        raise ServerStartError(f"cannot create the socket {path}: {path.parent} is not a directory",
                               hint="create the directory first")
    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ServerStartError(f"{path} exists and is not a socket; refusing to replace it",
                                   hint="remove it yourself or choose another --socket path")
        if _socket_is_live(path):
            raise ServerStartError(f"another server is already listening on {path}",
                                   hint="stop it first, or choose another --socket path")
        path.unlink()  # stale: left behind by a server that died
        log.info("removed the stale socket %s", path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600 from the start: no window where others can connect
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot create the socket {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(2048)
    sock.setblocking(False)
    st = path.lstat()
    return Listener(sock, f"unix:{path}", path, (st.st_dev, st.st_ino, st.st_ctime_ns))


def remove_own_socket(path: Path, ident: tuple[int, int, int]) -> None:
    """Unlink the socket file only if it is the one we created (not a successor's; inode
    numbers are reused at once on tmpfs, hence the change time too)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino, st.st_ctime_ns) == ident:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _Uvicorn(uvicorn.Server):
    """uvicorn with our shutdown: the first signal starts a graceful stop (engine drains for the
    grace period, then cancels), a second one forces exit; the signal is not re-raised
    afterwards, so the process exits 0."""

    def __init__(self, config: uvicorn.Config, host: ModelHost, grace_s: float):
        super().__init__(config)
        self.host = host
        self.grace_s = grace_s
        self.on_stop: Callable[[], None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:  # noqa: ARG002
        if self.should_exit:
            self.force_exit = True
            return
        self.request_stop()

    def request_stop(self) -> None:
        if not self.should_exit and self.on_stop is not None:
            self.on_stop()
        self.host.begin_shutdown(self.grace_s)
        self.should_exit = True


def _named(config: ServerConfig, listener: Listener) -> ServerConfig:
    """The config with an instance name: the one given, else the address it listens on (known
    only once bound: --port 0)."""
    if config.instance is not None:
        return config
    return dataclasses.replace(config, instance=listener.address)


def _uvicorn_config(app, *, log_level: str, grace_s: float) -> uvicorn.Config:
    return uvicorn.Config(app, log_level=log_level, access_log=log_level == "debug",
                          timeout_graceful_shutdown=int(grace_s + SHUTDOWN_MARGIN_S),
                          lifespan="off", server_header=False, timeout_keep_alive=30)


def run_server(config: ServerConfig, loader: Callable[[], Engine], *, host: str = "127.0.0.1",
               port: int = 8080, socket_path: str | Path | None = None,
               notify: Callable[[str], None] = print, log_level: str = "warning") -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean stop, 1 when the model failed to load."""
    if socket_path is None:
        check_exposure(host, config.api_keys)
        listener = bind_tcp(host, port)
    else:
        listener = bind_unix(socket_path)
    config = _named(config, listener)
    model_host = ModelHost(model_id=config.model_id)
    app = create_app(config, model_host)
    server = _Uvicorn(_uvicorn_config(app, log_level=log_level, grace_s=config.grace_s),
                      model_host, config.grace_s)
    failed: list[BaseException] = []
    notify(f"vibe-edge: listening on {listener.url}; loading the model (GET /health says 503 "
           "until it is ready)")

    def ready(h: ModelHost) -> None:
        info = h.engine.info if h.engine is not None else None
        shape = f" ({info.n_slots} slots x {info.ctx_per_slot} tokens)" if info else ""
        where = listener.url if listener.path else f"{listener.url}/v1"
        notify(f"vibe-edge: ready - serving {h.model_id}{shape} at {where}")

    def failed_to_load(exc: BaseException) -> None:
        failed.append(exc)
        notify(f"vibe-edge: the model failed to load: {exc}")
        server.request_stop()

    server.on_stop = lambda: notify(
        f"vibe-edge: stopping - finishing requests for up to {config.grace_s:g} s")
    try:
        model_host.load_in_background(loader, on_ready=ready, on_error=failed_to_load)
        server.run(sockets=[listener.sock])
    finally:
        model_host.finish_shutdown(timeout=config.grace_s + 30)
        listener.close()
    notify("vibe-edge: stopped")
    return 1 if failed else 0


class BackgroundServer:
    """The server in a daemon thread with its own event loop. Give an engine (shared, not closed
    on stop unless owns_engine) or a loader (loaded in the background, closed on stop)."""

    def __init__(self, config: ServerConfig | None = None, *, engine: Engine | None = None,
                 loader: Callable[[], Engine] | None = None, owns_engine: bool = False,
                 host: str = "127.0.0.1", port: int = 0, socket_path: str | Path | None = None,
                 log_level: str = "warning"):
        self.config = config or ServerConfig()
        if socket_path is None:
            check_exposure(host, self.config.api_keys)
            self.listener = bind_tcp(host, port)
        else:
            self.listener = bind_unix(socket_path)
        self.config = _named(self.config, self.listener)
        if engine is not None:
            self.host = ModelHost(engine, owns_engine=owns_engine, model_id=self.config.model_id)
        else:
            self.host = ModelHost(model_id=self.config.model_id)
        self._loader = loader
        self.app = create_app(self.config, self.host)
        self.server = _Uvicorn(_uvicorn_config(self.app, log_level=log_level, grace_s=self.config.grace_s),
                               self.host, self.config.grace_s)
        self._thread = threading.Thread(target=self._run, name="vibe-edge-server", daemon=True)

    @property
    def url(self) -> str:
        return self.listener.url

    @property
    def socket_path(self) -> Path | None:
        return self.listener.path

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.listener.sock]))

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        if self._loader is not None:
            self.host.load_in_background(self._loader)
        self._thread.start()
        for _ in range(int(timeout / 0.02)):
            if self.server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.02)
        if not self.server.started:
            raise ServerStartError("the server did not start")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self.server.request_stop()
            self._thread.join(timeout)
        self.host.finish_shutdown(timeout)
        self.listener.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

