"""Helpers for the deployment tests."""

from __future__ import annotations

import os
import shutil

import pytest

from vibe_edge.deploy.nginx import nginx_binary


def require_tool(name: str) -> str:
    """The tool's path. Missing: the test is skipped on a developer's machine, and fails in CI,
    whose .ci/run installs it (a skip there would hide that the deployment went untested)."""
    path = nginx_binary() if name == "nginx" else shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {_PACKAGES.get(name, name)})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


_PACKAGES = {"promtool": "prometheus", "systemd-analyze": "systemd"}
