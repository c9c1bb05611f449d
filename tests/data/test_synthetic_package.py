"""The synthetic package's shape: families registered, not dispatched on; imports only downwards; the streaming
writer's files are what ``np.save`` writes."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from dkp_tui.data import synthetic
from dkp_tui.data.prepare_common import ArrayWriter
from dkp_tui.data.synthetic import registry

PACKAGE = Path(synthetic.__file__).parent
# each module may import only the modules before it (the package docstring's order)
ORDER = ("render", "scene", "figure", "family", "figures", "room", "stage", "registry", "dataset")
FAMILY_MODULES = ("figures", "room", "stage")


def _imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports, and the private names it reads from them."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dkp_tui.data.synthetic"):
            rest = node.module.removeprefix("dkp_tui.data.synthetic").lstrip(".")
            found |= {rest} if rest else {alias.name for alias in node.names}
            found |= {f"private {alias.name}" for alias in node.names if alias.name.startswith("_")}
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and isinstance(node.value, ast.Name) \
                and node.value.id in ORDER:
            found.add(f"private {node.value.id}.{node.attr}")
    return found


def test_every_module_is_in_the_order_and_imports_only_downwards() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} == set(ORDER)
    for k, module in enumerate(ORDER):
        imported = _imports(module)
        assert not {m for m in imported if m.startswith("private")}, module
        assert imported <= set(ORDER[:k]), f"{module} imports {sorted(imported - set(ORDER[:k]))}"
        if module in FAMILY_MODULES:
            assert not imported & set(FAMILY_MODULES), f"family {module} imports another family"


def test_the_registry_holds_each_family_module_once() -> None:
    assert registry.FAMILIES == FAMILY_MODULES and registry.DEFAULT_FAMILY == "figures"
    streams = [registry.get(name).stream for name in registry.FAMILIES]
    assert len(set(streams)) == len(streams)
    with pytest.raises(Exception, match="unknown family 'jungle'"):
        registry.get("jungle")


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (7, 5, 5, 3)), (np.float32, (7, 16, 2)), (bool, (7, 16)),
                                         (np.uint8, (0, 4, 4))])
def test_array_writer_writes_what_np_save_writes(tmp_path: Path, dtype, shape) -> None:
    array = (np.random.default_rng(0).random(shape) * 200).astype(dtype)
    np.save(tmp_path / "saved.npy", array)
    writer = ArrayWriter(tmp_path / "written.npy", dtype, shape)
    for start in (4, 0):  # any order
        if start < len(array):
            writer.write(start, array[start:start + 4])
    writer.finish()
    assert (tmp_path / "written.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
    assert not list(tmp_path.glob(".*"))  # the hidden partial file was renamed


def test_array_writer_refuses_rows_that_do_not_fit(tmp_path: Path) -> None:
    writer = ArrayWriter(tmp_path / "a.npy", np.uint8, (4, 2))
    with pytest.raises(ValueError):
        writer.write(3, np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        writer.write(0, np.zeros((1, 3), np.uint8))
    writer.close()
