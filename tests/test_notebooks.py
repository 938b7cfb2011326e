"""The capacity notebooks: public API only, committed without outputs, and they run.

Each notebook is executed headless with nbclient (its own small default parameters) and
must finish without an error and draw every figure it asks for.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sim
import sim.sweep

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
PUBLIC = {"sim": set(sim.__all__), "sim.sweep": set(sim.sweep.__all__)}


def _code(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_the_four_stories_are_there() -> None:
    names = [path.stem for path in NOTEBOOKS]
    assert len(names) == 4, names
    for number, topic in zip("1234", ("az_loss", "canary", "failover", "rate_limit")):
        assert any(n.startswith(f"0{number}_") and topic in n for n in names), (number, names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_only_the_public_api(path: Path) -> None:
    for source in _code(path):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sim":
                assert node.module in PUBLIC, f"{path.name}: imports from {node.module}"
                for alias in node.names:
                    assert alias.name in PUBLIC[node.module], f"{path.name}: {alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] != "sim" or alias.name in PUBLIC, alias.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    assert sum("parameters" in t for t in tags) == 1, "one cell tagged parameters"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_and_draws_its_figures(path: Path) -> None:
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    drawn = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        outputs = cell.outputs
        assert not [o for o in outputs if o.output_type == "error"], cell.source[:80]
        images = sum("image/png" in o.get("data", {}) for o in outputs)
        if "plt.show()" in cell.source:
            assert images >= 1, f"{path.name}: no figure from cell {cell.source[:80]!r}"
        drawn += images
    assert drawn >= 1
