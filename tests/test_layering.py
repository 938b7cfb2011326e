"""The layering of the lab, read from the source with ``ast`` (no imports executed).

* ``labcore/`` (the shared core) imports none of ``sim``, ``chaosomnisql``, ``loadtests``,
  ``sandbox``: the three runners import it as equals.
* Nothing outside ``sim/`` imports ``sim.kernel`` or ``sim.model``.
* ``chaos/`` and ``loadtests/`` import only ``labcore`` and ``sim``'s public API: names
  ``sim.__all__`` lists, imported from ``sim`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sim

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"labcore": ROOT / "labcore", "chaos": ROOT / "chaos" / "chaosomnisql",
            "loadtests": ROOT / "loadtests", "sandbox": ROOT / "sandbox",
            "scripts": ROOT / "scripts"}


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, module, names)`` of every absolute import in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, tuple(a.name for a in node.names)))
    return found


def _sources(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


def _top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_nothing_outside_sim_reaches_into_its_kernel_or_model(package: str) -> None:
    bad = [f"{p.relative_to(ROOT)}:{line} {module}" for p in _sources(package)
           for line, module, _ in _imports(p)
           if module.startswith(("sim.kernel", "sim.model"))]
    assert bad == []


def test_labcore_imports_no_runner() -> None:
    runners = {"sim", "chaosomnisql", "loadtests", "sandbox"}
    bad = [f"{p.relative_to(ROOT)}:{line} {module}" for p in _sources("labcore")
           for line, module, _ in _imports(p) if _top(module) in runners]
    assert bad == []


@pytest.mark.parametrize("package", ["chaos", "loadtests"])
def test_runners_use_only_labcore_and_sims_public_api(package: str) -> None:
    bad = []
    for path in _sources(package):
        for line, module, names in _imports(path):
            if _top(module) != "sim":
                continue
            private = [n for n in names if n not in sim.__all__]
            if module != "sim" or not names or private:
                bad.append(f"{path.relative_to(ROOT)}:{line} {module} {private or ''}")
    assert bad == []


def test_the_check_sees_what_it_must_refuse(tmp_path: Path) -> None:
    """The test cannot pass vacuously: a deep import and a private name are found."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from sim.model.workload import Workload\n"
                    "from sim import simulate, _private\nimport sim.kernel\n")
    found = _imports(path)
    assert (2, "sim.model.workload", ("Workload",)) in found
    assert (3, "sim", ("simulate", "_private")) in found and (4, "sim.kernel", ()) in found
