"""`vibe-edge deploy nginx|prometheus`: configuration for several instances, written from their
addresses (docs/DEPLOY.md). Thin over vibe_edge.deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vibe_edge.cli.common import cli_errors, console, notify

BackendOpt = Annotated[list[str], typer.Option(
    "--backend", "-b", help="An instance (`vibe-edge serve`) as host:port; repeat for each one.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files to (created if missing).")]


def register(app: typer.Typer) -> None:
    deploy_app = typer.Typer(help="Configuration for several instances: nginx in front, Prometheus "
                                  "watching. See docs/DEPLOY.md.", no_args_is_help=True)
    deploy_app.command("nginx")(deploy_nginx)
    deploy_app.command("prometheus")(deploy_prometheus)
    app.add_typer(deploy_app, name="deploy")


def deploy_nginx(
    backend: BackendOpt,
    listen: Annotated[Optional[str], typer.Option(
        help="Where nginx takes client requests, host:port. Default: 127.0.0.1:8080.")] = None,
    out: OutOpt = Path("vibe-edge-nginx"),
    max_fails: Annotated[Optional[int], typer.Option(
        help="Failures (connection errors, 429, 503) within --fail-timeout that take an instance "
             "out of rotation. Default: 3.")] = None,
    fail_timeout: Annotated[Optional[int], typer.Option(
        help="Seconds an instance stays out of rotation, and the window failures count in. Default: 10.")] = None,
    read_timeout: Annotated[Optional[int], typer.Option(
        help="Seconds nginx waits for an instance's next bytes; keep it above serve's --timeout. "
             "Default: 3600.")] = None,
    tries: Annotated[Optional[int], typer.Option(
        help="Instances one request may be tried on. Default: all of them.")] = None,
    max_body: Annotated[Optional[int], typer.Option(
        help="Largest request body in bytes; keep it equal to serve's --max-body. Default: 8 MiB.")] = None,
    check: Annotated[bool, typer.Option(
        "--check/--no-check", help="Run `nginx -t` on the result when nginx is installed.")] = True,
) -> None:
    """Write nginx.conf (complete: `nginx -p OUT -c nginx.conf` runs it) and the http and server
    parts for an existing nginx. Conversations stay on their instance; new ones go by load."""
    from vibe_edge.deploy import nginx

    with cli_errors():
        options = {k: v for k, v in dict(listen=listen, max_fails=max_fails, fail_timeout_s=fail_timeout,
                                         read_timeout_s=read_timeout, tries=tries,
                                         max_body_bytes=max_body).items() if v is not None}
        config = nginx.NginxConfig(backends=tuple(backend), **options)
        written = nginx.write(config, out)
    for path in written:
        console.print(f"wrote {path}")
    if check:
        binary = nginx.nginx_binary()
        if binary is None:
            notify("nginx is not installed here, so the configuration was not checked (`nginx -t`)")
        else:
            ok, said = nginx.check(out, binary)
            if not ok:
                console.print(f"[bold red]error:[/] nginx -t rejects the configuration:\n{said}")
                raise typer.Exit(1)
            console.print("checked: nginx -t accepts it")
    console.print(f"run it:  nginx -p {out.absolute()} -c nginx.conf -e logs/error.log")
    if config.exposed:
        notify(f"nginx listens on {config.listen}, beyond this machine: give every instance an API "
               "key (serve --api-key-file FILE); nginx passes the Authorization header through")


def deploy_prometheus(
    backend: BackendOpt,
    out: OutOpt = Path("vibe-edge-prometheus"),
    api_key_file: Annotated[Optional[str], typer.Option(
        help="File holding the one bearer key Prometheus sends, when the instances require keys.")] = None,
) -> None:
    """Write prometheus.yml (scraping every instance) and the alert rules beside it."""
    from vibe_edge.deploy import prometheus

    with cli_errors():
        config = prometheus.PrometheusConfig(targets=tuple(backend), api_key_file=api_key_file)
        written = prometheus.write(config, out)
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"check it:  promtool check config {out / prometheus.CONFIG_NAME}")
