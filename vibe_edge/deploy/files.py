"""What the generators share: the packaged templates, and writing files whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jinja2


def templates() -> jinja2.Environment:
    """The templates shipped in vibe_edge/deploy/templates (package data, so an installed
    vibe-edge finds them as a checkout does)."""
    return jinja2.Environment(loader=jinja2.PackageLoader("vibe_edge.deploy", "templates"),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def write_files(files: dict[str, str], out_dir: Path) -> list[Path]:
    """Write each file whole: a temp file beside it, renamed over the old one, so a reload never
    reads half a configuration and a failure leaves the old one in place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = out_dir / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
