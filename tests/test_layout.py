"""The package layout docs/architecture.md draws: imports point down the layers, no module imports itself back
through others, and the wheel ships every package and the dashboard's stylesheet."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dkp_tui"

# top to bottom; a package imports only from packages on lower rows (and from itself)
LAYERS = (
    ("commands",),  # the CLI (dkp_tui.cli and __main__ count as commands)
    ("experiments", "watch", "doctor"),  # drivers that train and evaluate many runs; the dashboard; environment checks
    ("eval", "train"),
    ("inference", "depth"),
    ("model", "data"),
    ("formats",),
    ("",),  # the modules directly in dkp_tui/: errors, config, atomic, console, progress, devices, ...
)
RANK = {name: rank for rank, row in enumerate(LAYERS) for name in row}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in ("cli", "__main__"):
        return "commands"
    if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir():
        return parts[1]
    return ""


def _imports(path: Path) -> set[str]:
    """Every dkp_tui module ``path`` imports, at the top or inside a function; TYPE_CHECKING blocks aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from dkp_tui.eval import joints` imports the module dkp_tui.eval.joints
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _is_module(sub) else node.module)
    return {m for m in found if m.startswith("dkp_tui.")}


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_package_has_a_layer(graph: dict[str, set[str]]):
    assert {_layer(m) for m in graph if m != "dkp_tui"} <= set(RANK)


def test_imports_point_down_the_layers(graph: dict[str, set[str]]):
    upward = [f"{src} -> {dst}" for src, targets in graph.items() if src != "dkp_tui" for dst in targets
              if _layer(src) != _layer(dst) and RANK[_layer(dst)] <= RANK[_layer(src)]]
    assert upward == []


def test_no_import_cycle(graph: dict[str, set[str]]):
    """Tarjan's strongly connected components over module imports: every component is a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_checks_see_an_upward_import(tmp_path: Path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from dkp_tui.train.loop import train\n", encoding="utf-8")
    assert _imports(bad) == {"dkp_tui.train.loop"}
    assert RANK[_layer("dkp_tui.train.loop")] < RANK[_layer("dkp_tui.formats.run_dir")]


def test_the_wheel_lists_every_package_and_ships_the_stylesheets():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    on_disk = {_module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert set(setup["packages"]) == on_disk | {"dkp_tui.presets"}
    for sheet in PACKAGE.rglob("*.tcss"):
        package = _module_name(sheet.parent / "__init__.py")
        assert any(sheet.match(pattern) for pattern in setup["package-data"].get(package, ())), sheet
