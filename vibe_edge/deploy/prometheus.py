"""`vibe-edge deploy prometheus`: a scrape configuration for every instance, and the alert rules.

    config = PrometheusConfig(targets=("10.0.0.5:8080", "10.0.0.6:8080"))
    render(config)      {"prometheus.yml": ..., "vibe-edge-alerts.yml": ...}

Prometheus scrapes the instances themselves, never nginx: a scrape through the balancer would
read a different instance each time. The rules use only the metric names /metrics exposes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from vibe_edge.deploy.files import templates, write_files
from vibe_edge.deploy.nginx import parse_address
from vibe_edge.errors import SettingsError

CONFIG_NAME = "prometheus.yml"
RULES_NAME = "vibe-edge-alerts.yml"
_KEY_FILE = re.compile(r"^[^\s'\"#{}\[\],&*!|>%@`]+$")  # a plain YAML scalar, nothing to quote


def alert_rules() -> str:
    """The alert rules, as shipped (they hold Prometheus templates, so they are not rendered)."""
    return resources.files("vibe_edge.deploy").joinpath("templates", RULES_NAME).read_text("utf-8")


@dataclass(frozen=True)
class PrometheusConfig:
    """targets: the instances' host:port (Prometheus cannot scrape a Unix socket).
    api_key_file: where Prometheus reads the bearer key, when the instances require one."""

    targets: tuple[str, ...]
    api_key_file: str | None = None
    addresses: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.targets:
            raise SettingsError("no instances given", hint="name each one with --backend host:port",
                                param="backend")
        addresses = []
        for target in self.targets:
            address = parse_address(target)
            if address.startswith("unix:"):
                raise SettingsError(f"Prometheus cannot scrape the Unix socket {address}",
                                    hint="serve that instance on TCP as well, or leave it out",
                                    param="backend")
            addresses.append(address)
        if len(set(addresses)) != len(addresses):
            raise SettingsError("an instance is given twice", hint="name each instance once",
                                param="backend")
        object.__setattr__(self, "addresses", tuple(addresses))
        if self.api_key_file is not None and not _KEY_FILE.match(self.api_key_file):
            raise SettingsError(f"the key file path {self.api_key_file!r} has spaces or characters "
                                "YAML would need quoted", hint="use a plain path", param="api_key_file")

    def command(self) -> str:
        parts = ["vibe-edge deploy prometheus", *(f"--backend {a}" for a in self.addresses)]
        if self.api_key_file:
            parts.append(f"--api-key-file {self.api_key_file}")
        return " ".join(parts)


def render(config: PrometheusConfig) -> dict[str, str]:
    text = templates().get_template(CONFIG_NAME + ".j2").render(
        targets=config.addresses, api_key_file=config.api_key_file, rules_name=RULES_NAME,
        command=config.command())
    return {CONFIG_NAME: text, RULES_NAME: alert_rules()}


def write(config: PrometheusConfig, out_dir: str | Path) -> list[Path]:
    return write_files(render(config), Path(out_dir))
