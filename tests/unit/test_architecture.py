"""The house's rules, checked on the code's own imports: the engine imports no layer above it,
no package imports the assembly point, no module imports itself in a circle, no module is long.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "charging_engine", "billing", "admin_api", "pbx_connectors", "charging_server", "benchmarks",
    "notifications",
)
# Who may import whom (top-level packages); the engine sits at the bottom.
MAY_IMPORT = {
    "charging_engine": {"charging_engine"},
    "pbx_connectors": {"pbx_connectors", "charging_engine"},
    "billing": {"billing", "charging_engine"},
    "admin_api": {"admin_api", "billing", "charging_engine", "notifications"},
    "charging_server": {"charging_server", "charging_engine", "billing", "admin_api",
                        "pbx_connectors", "notifications"},
    "benchmarks": {"benchmarks", "charging_engine", "billing", "admin_api", "pbx_connectors",
                   "charging_server", "notifications"},
    "notifications": {"notifications", "charging_engine", "billing"},
}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Modules of ours that ``name`` imports anywhere (top level, functions, TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imported(name, path, known)) for name, path in known.items()}


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = sorted(
        f"{src} -> {dst}"
        for src, dsts in graph().items() for dst in dsts
        if dst.split(".")[0] not in MAY_IMPORT[src.split(".")[0]]
    )
    assert wrong == []


def test_no_import_circles() -> None:
    edges = graph()
    # A package's __init__ re-exporting its modules is not a circle of the design.
    edges = {m: {d for d in ds if not m.startswith(d + ".")} for m, ds in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert circles == []


@pytest.mark.parametrize("pkg", PACKAGES)
def test_no_module_is_past_the_line_limit(pkg: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n for p in (ROOT / pkg).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
