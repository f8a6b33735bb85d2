"""The layout's rules, checked on the source: no import cycles, llama.cpp only inside the engine,
the server and the TUI on the engine's protocol only.

Imports are read from the syntax tree (all of them: module level and inside functions, not
those under `if TYPE_CHECKING`). Importing `a.b.c` from outside package `a.b` runs `a.b`'s
__init__, so that counts as importing the package too: that is how chat/ and engine/ used to
import each other through their __init__ files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vibe_edge"
# The repository's convert/ folder is installed as vibe_edge.convert (pyproject package-dir).
FOLDERS = {"vibe_edge": PACKAGE, "vibe_edge.convert": REPO / "convert"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for prefix, root in FOLDERS.items():
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in `name`, relative ones resolved."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks never run
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    here = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _line in _imports(name):
            if target not in MODULES or target == name:
                continue
            graph[name].add(target)
            parts = target.split(".")
            for i in range(2, len(parts)):  # the packages an outside import initializes
                package = ".".join(parts[:i])
                if package in MODULES and not name.startswith(package + ".") and package != name:
                    graph[name].add(package)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_module_list_is_the_installed_layout():
    assert "vibe_edge.engine.scheduler" in MODULES and "vibe_edge.types" in MODULES
    assert any(name.startswith("vibe_edge.convert.") for name in MODULES)


def test_no_module_imports_one_that_imports_it_back():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle_through_a_package_init():
    graph = {"p": {"p.a"}, "p.a": {"q.b", "q"}, "q": {"q.b"}, "q.b": {"p"}}
    assert _cycles(graph) == [["p", "p.a", "q", "q.b"]]


def _importers_of(prefix: str) -> list[str]:
    return [f"{name}:{line}" for name in MODULES for target, line in _imports(name)
            if target == prefix or target.startswith(prefix + ".")]


def test_llama_cpp_is_imported_only_by_the_engine():
    outside = [where for where in _importers_of("llama_cpp") if not where.startswith("vibe_edge.engine.")]
    assert not outside, f"llama_cpp imported outside vibe_edge/engine/: {outside}"


@pytest.mark.parametrize("layer", ["vibe_edge.server", "vibe_edge.tui", "vibe_edge.text",
                                   "vibe_edge.requests", "vibe_edge.presets", "vibe_edge.types"])
def test_the_server_the_tui_and_the_leaves_see_the_engine_only_through_its_protocol(layer):
    users = [where for where in _importers_of("vibe_edge.engine") if where.split(":")[0] == layer
             or where.startswith(layer + ".")]
    assert not users, f"{layer} imports the engine's implementation: {users} (use vibe_edge.types.EngineAPI)"


def test_every_package_is_installed_and_convert_under_vibe_edge():
    """pyproject lists the packages (to install convert/ as vibe_edge.convert): a package
    folder missing from the list would be missing from a wheel."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    packages = {name for name in MODULES if _is_package(name)}
    assert set(config["packages"]) == packages
    assert config["package-dir"] == {"vibe_edge.convert": "convert"}
