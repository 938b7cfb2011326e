"""The request path is wired through named fields, never by replacing methods (issue 15).

Each component calls its next hop through a typed field that the system sets once, and
whatever stands in front of a hop later goes through the component's ``set_<hop>``
setter (see :mod:`sim.model.system`). A method replaced at run time is what a compiled
class cannot have (its methods are fixed) and what hides the path from a reader, so
these tests read the model's source and refuse both: an instance attribute shadowing a
method, and a hop field assigned from outside its component or outside its setter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "sim" / "model").glob("*.py")) + sorted(
    (ROOT / "sim" / "kernel").glob("*.py"))

#: The request path's hop fields: where each component sends an attempt next.
HOPS = frozenset({"enter", "release", "observer", "done", "accept", "forward", "fetch",
                  "lookup", "finish", "serve", "after", "submit", "store", "call"})
#: Where a component may set its own hop fields: construction, its setters, and a
#: read-through policy's one-time ``install``.
SETTERS = ("__init__", "install")


def _classes(tree: ast.Module) -> list[ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _is_property(func: ast.FunctionDef) -> bool:
    """``@property`` or ``@<name>.setter``: assigning it calls the setter (an attribute
    a compiled class may have), it does not shadow a method."""
    return any((isinstance(d, ast.Name) and d.id == "property")
               or (isinstance(d, ast.Attribute) and d.attr == "setter")
               for d in func.decorator_list)


def _methods(cls: ast.ClassDef) -> set[str]:
    return {node.name for node in cls.body
            if isinstance(node, ast.FunctionDef) and not _is_property(node)}


def _all_methods() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in SOURCES:
        for cls in _classes(ast.parse(path.read_text())):
            out.setdefault(cls.name, set()).update(_methods(cls))
    return out


def _targets(node: ast.AST) -> list[ast.Attribute]:
    """Attributes assigned by ``node`` (tuple targets unpacked)."""
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        out: list[ast.Attribute] = []
        for target in targets:
            elts = target.elts if isinstance(target, ast.Tuple) else [target]
            out.extend(t for t in elts if isinstance(t, ast.Attribute))
        return out
    return []


def _violations(path: Path, methods: dict[str, set[str]]) -> list[str]:
    tree = ast.parse(path.read_text())
    found: list[str] = []
    name = path.relative_to(ROOT)
    for cls in _classes(tree):
        own = set(_methods(cls))
        for base in cls.bases:
            if isinstance(base, ast.Name):
                own |= methods.get(base.id, set())
        for func in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(func):
                for target in _targets(node):
                    on_self = isinstance(target.value, ast.Name) and target.value.id == "self"
                    where = f"{name}:{target.lineno} {cls.name}.{func.name}"
                    if on_self and target.attr in own:
                        found.append(f"{where}: replaces the method {target.attr}")
                    elif on_self and target.attr in HOPS and not (
                            func.name in SETTERS or func.name == f"set_{target.attr}"):
                        found.append(f"{where}: sets the hop {target.attr} outside a setter")
    for node in ast.walk(tree):
        for target in _targets(node):
            on_self = isinstance(target.value, ast.Name) and target.value.id == "self"
            if not on_self and target.attr in HOPS:
                found.append(f"{name}:{target.lineno}: sets another object's hop "
                             f"{target.attr} (use its set_{target.attr})")
    return found


def test_no_method_is_replaced_and_hops_change_only_through_their_setters() -> None:
    methods = _all_methods()
    found = [v for path in SOURCES for v in _violations(path, methods)]
    assert not found, "\n".join(found)
    assert not [p for p in SOURCES if "method-assign" in p.read_text()]


def test_the_check_sees_a_replaced_method_and_a_hop_set_from_outside(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "class Cache:\n"
        "    def __init__(self):\n"
        "        self.store = self._bounded\n"
        "    def store(self, key): ...\n"
        "    def _bounded(self, key): ...\n"
        "class Canary:\n"
        "    def install(self, gateway):\n"
        "        gateway.forward = self.submit\n"
        "    def later(self):\n"
        "        self.fetch = None\n"
        "class Client:\n"  # a settable property is not a method: assigning it is its use
        "    def __init__(self):\n"
        "        self.budget = 1.0\n"
        "        self.send = None\n"
        "    @property\n"
        "    def budget(self): ...\n"
        "    @budget.setter\n"
        "    def budget(self, value): ...\n"
        "    def send(self): ...\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = _violations(bad, _all_methods())
    finally:
        ROOT = saved
    assert [v.split(": ", 1)[1] for v in found] == [
        "replaces the method store", "sets the hop fetch outside a setter",
        "replaces the method send",
        "sets another object's hop forward (use its set_forward)"]


@pytest.mark.parametrize("hop", sorted(HOPS - {"accept", "submit", "store", "call"}))
def test_every_hop_field_has_its_setter(hop: str) -> None:
    """Every hop field but the fixed entries (``accept``, ``submit``, ``store``,
    ``call``: chosen at construction or plain methods) is changed through one setter."""
    setters = {name for cls_methods in _all_methods().values() for name in cls_methods}
    assert f"set_{hop}" in setters


def _baseline_system(*overrides: str):  # type: ignore[no-untyped-def]
    from labcore.facts import OUTCOMES
    from sim import load_scenario
    from sim.kernel import Environment, Recorder, Streams
    from sim.model import System

    scenario = load_scenario(ROOT / "scenarios" / "baseline.yaml",
                             overrides=["run.duration=20s", "run.warmup=0s", *overrides])
    env = Environment(collect_every=scenario.run.window)
    recorder = Recorder(env, scenario.run.window, list(scenario.workload.tenants),
                        outcomes=OUTCOMES)
    return System(env, scenario, Streams(1), recorder)


def test_default_hops_are_called_directly_and_a_hop_set_in_front_sees_every_attempt() -> None:
    """The workload, the client and the gateway call their next hop's own method directly
    while the wiring's hop is in place (a speed-up, issue 15); a hop set in front of it
    (a canary, a failover) turns that off and gets every attempt, and restoring the
    wiring's hop turns it back on."""
    system = _baseline_system()
    client, gateway, engine = system.client, system.gateway, system.engine
    assert system.workload._client is client
    assert client._gateway is gateway and gateway._engine is engine
    entered: list[int] = []
    forwarded: list[int] = []

    def enter(attempt):  # type: ignore[no-untyped-def]
        entered.append(attempt.request.id)
        previous_enter(attempt)

    def forward(attempt):  # type: ignore[no-untyped-def]
        forwarded.append(attempt.request.id)
        previous_forward(attempt)

    previous_enter = client.set_enter(enter)
    previous_forward = gateway.set_forward(forward)
    assert client._gateway is None and gateway._engine is None
    system.env.run(until=5.0)
    attempts = client.attempts
    assert attempts > 1000 and len(entered) == attempts
    assert len(forwarded) == attempts  # no zone is down or capped in the baseline
    assert client.set_enter(previous_enter) is enter
    assert gateway.set_forward(previous_forward) is forward
    assert client._gateway is gateway and gateway._engine is engine
    system.env.run(until=10.0)
    assert client.attempts > 2 * attempts * 0.9 and len(entered) == attempts


def test_a_bound_method_of_another_kind_is_called_through_the_field() -> None:
    """Only the hop's own default method is recognised: another method of the same
    object (the gateway's pinned or balanced entry) goes through the field."""
    system = _baseline_system("topology.gateway.routing=round_robin")
    assert system.gateway.accept == system.gateway._accept_balanced
    assert system.client._gateway is None


def test_a_station_calls_its_services_own_phases_directly_until_one_is_set_in_front() -> None:
    """Engine and connector stations are given the component's own ``serve`` and
    ``after`` (a :class:`~sim.kernel.station.Service`) and call them directly; a phase
    set in front (a gray failure, a release) is called for every job, and restoring the
    previous phase turns the direct call back on."""
    system = _baseline_system()
    station = system.engine.stations[0]
    assert station._serves is system.engine and station._afters is system.engine
    connector = system.connectors.stations[0]
    assert connector._serves is system.connectors and connector._afters is system.connectors
    served: list[float] = []
    ended: list[object] = []

    def serve(job):  # type: ignore[no-untyped-def]
        served.append(system.env.now)
        return previous_serve(job)

    def after(job):  # type: ignore[no-untyped-def]
        ended.append(job)
        return previous_after(job)

    previous_serve = station.set_serve(serve)
    previous_after = station.set_after(after)
    assert station._serves is None and station._afters is None
    system.env.run(until=5.0)
    assert station.started > 1000 and len(served) == station.started
    assert len(ended) >= station.started - station.capacity  # all but those in service
    station.set_serve(previous_serve)
    station.set_after(previous_after)
    assert station._serves is system.engine and station._afters is system.engine
    started, count = station.started, len(served)
    system.env.run(until=10.0)
    assert station.started > started + 1000 and len(served) == count
