"""The public surface: explicit, importable, documented."""

import ast
import importlib
import inspect

import pytest

import sim
from sim import _compiled as compiled

MODULES = ["sim", "labcore", "labcore.units", "labcore.distributions", "labcore.scenario",
           "labcore.scenario_file", "labcore.facts", "sim.run", "labcore.metrics",
           "labcore.checks", "sim.report", "sim.kernel", "sim.kernel.streams",
           "sim.kernel.events", "sim.kernel.station", "sim.kernel.recorder", "sim.model",
           *(f"labcore.scenario.{noun}" for noun in (
               "base", "run", "topology", "workload", "faults", "mitigations", "releases",
               "checks", "spec"))]


def _docstring(name: str, module: object) -> str | None:
    """The module's docstring; a compiled module keeps none (mypyc), so its source's."""
    if name in compiled.MODULES:
        return ast.get_docstring(ast.parse(compiled.source_path(name).read_text()))
    return getattr(module, "__doc__", None)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_its_public_names(name):
    module = importlib.import_module(name)
    assert _docstring(name, module), f"{name} has no docstring"
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.__all__ names missing {public}"


def test_top_level_api_is_typed():
    for name in ("load_scenario", "simulate", "compute_metrics", "run_replications",
                 "window_table", "passes", "evaluate_checks"):
        fn = getattr(sim, name)
        hints = inspect.signature(fn)
        assert hints.return_annotation is not inspect.Signature.empty, name


def test_check_rule_is_shared_and_strict():
    assert sim.passes("<=", 1.2, 1.5)
    assert not sim.passes("<=", 1.6, 1.5)
    assert not sim.passes("<", None, 900)  # never recovered: fails
    assert not sim.passes(">=", float("nan"), 0.0)


def test_named_streams_are_stable_and_independent():
    from sim.kernel import Streams

    a, b = Streams(1), Streams(1)
    assert a.get("x").random() == b.get("x").random()
    first = Streams(1).get("y").random()
    c = Streams(1)
    c.get("z").random()  # adding a consumer does not shift another stream
    assert c.get("y").random() == first
    assert Streams(2).get("x").random() != Streams(1).get("x").random()
