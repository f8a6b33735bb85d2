"""A whole deployment on one machine: N `vibe-edge serve` processes on loopback ports and a real
nginx in front of them, with the configuration `vibe-edge deploy nginx` writes.

    with LocalCluster(workdir, instances=3, serve_args=["--model", "demo"]) as cluster:
        httpx.post(cluster.url + "/v1/chat/completions", ...)
        cluster.kill(1); cluster.restart(1)

The tests and bench/deploy_bench.py use it; it is also the quickest way to see the routing work
before putting it on real machines. nginx runs from its own prefix under workdir (`-p`), in
the foreground, never as the system service. Everything it starts, it stops.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vibe_edge.deploy import nginx
from vibe_edge.errors import VibeEdgeError

DEFAULT_READY_TIMEOUT_S = 180.0    # loading the model: a few seconds on the demo, more on 1.5B
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


class ClusterError(VibeEdgeError):
    code = "cluster_error"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Instance:
    index: int
    log_path: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """host:port: the name it reports in X-Vibe-Edge-Instance, and nginx's $upstream_addr."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class LocalCluster:
    """instances: how many `vibe-edge serve` processes; serve_args: given to each (model, slots,
    threads, ...); nginx_options: NginxConfig fields (fail_timeout_s, max_fails, ...)."""

    workdir: Path
    instances: int = 3
    serve_args: list[str] = field(default_factory=lambda: ["--model", "demo"])
    nginx_options: dict = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)   # added to the instances' environment
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    members: list[Instance] = field(init=False, default_factory=list)
    nginx_proc: subprocess.Popen | None = field(init=False, default=None)
    port: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.prefix = self.workdir / "nginx"
        self.members = [Instance(i, self.workdir / f"instance-{i}.log") for i in range(self.instances)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- instances ------------------------------------------------------------------------------
    def _spawn(self, member: Instance) -> None:
        log = member.log_path.open("a", encoding="utf-8")
        cmd = [sys.executable, "-m", "vibe_edge", "serve", *self.serve_args,
               "--port", str(member.port)]
        member.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"})
        log.close()

    def _learn_port(self, member: Instance, timeout: float) -> None:
        """An instance started on --port 0 prints the port it took."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.findall(member.log_path.read_text(encoding="utf-8", errors="replace"))
            if found:
                member.port = int(found[-1])
                return
            self._check_alive(member)
            time.sleep(0.05)
        raise ClusterError(f"instance {member.index} never said where it listens; see {member.log_path}")

    def _check_alive(self, member: Instance) -> None:
        if member.proc is not None and member.proc.poll() is not None:
            tail = member.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise ClusterError(f"instance {member.index} exited with status {member.proc.returncode}:\n{tail}")

    def wait_ready(self, index: int, timeout: float | None = None) -> None:
        """Until the instance's /health answers 200 (the model is loaded)."""
        member = self.members[index]
        deadline = time.monotonic() + (timeout or self.ready_timeout_s)
        while time.monotonic() < deadline:
            self._check_alive(member)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(member.url + "/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.1)
        raise ClusterError(f"instance {index} not ready after {timeout or self.ready_timeout_s:g} s; "
                           f"see {member.log_path}")

    def kill(self, index: int) -> None:
        """SIGKILL: the instance dies mid-request, as on a power cut or the OOM killer."""
        proc = self.members[index].proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)

    def terminate(self, index: int) -> None:
        """SIGTERM: the instance drains (the caller waits for it with wait_exit)."""
        proc = self.members[index].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def wait_exit(self, index: int, timeout: float = 60.0) -> int:
        proc = self.members[index].proc
        assert proc is not None
        return proc.wait(timeout)

    def restart(self, index: int) -> None:
        """Start a stopped instance again on its port (nginx's configuration names it) and wait
        until it is ready."""
        member = self.members[index]
        if member.running:
            raise ClusterError(f"instance {index} is still running")
        self._spawn(member)
        self.wait_ready(index)

    # -- nginx ----------------------------------------------------------------------------------
    def _start_nginx(self) -> None:
        binary = nginx.nginx_binary()
        if binary is None:
            raise ClusterError("nginx is not installed", hint="apt-get install nginx")
        for _ in range(3):  # the free port may be taken before nginx binds it: pick another
            self.port = free_port()
            config = nginx.NginxConfig(backends=tuple(m.address for m in self.members),
                                       listen=f"127.0.0.1:{self.port}", **self.nginx_options)
            nginx.write(config, self.prefix)
            log = (self.workdir / "nginx.out").open("a", encoding="utf-8")
            self.nginx_proc = subprocess.Popen(
                [binary, "-p", f"{self.prefix}/", "-c", nginx.CONF_NAME, "-e", "logs/error.log",
                 "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.nginx_proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return
                time.sleep(0.05)
            self._stop_nginx()
        said = (self.prefix / "logs" / "error.log").read_text(errors="replace")[-2000:]
        raise ClusterError(f"nginx did not start:\n{said}")

    def _stop_nginx(self) -> None:
        proc, self.nginx_proc = self.nginx_proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # fast shutdown: workers drop their connections
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def access_log(self) -> str:
        return (self.prefix / "logs" / "access.log").read_text(errors="replace")

    # -- the whole --------------------------------------------------------------------------------
    def start(self) -> LocalCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            for member in self.members:
                self._spawn(member)  # port 0: each takes a free port and prints it
            for member in self.members:
                self._learn_port(member, self.ready_timeout_s)
            for member in self.members:
                self.wait_ready(member.index)
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stop_nginx()
        for member in self.members:
            if member.running:
                member.proc.send_signal(signal.SIGTERM)
        for member in self.members:
            if member.proc is not None:
                try:
                    member.proc.wait(30)
                except subprocess.TimeoutExpired:
                    member.proc.kill()
                    member.proc.wait()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
