"""SimPy's internals that ``sim.kernel`` relies on: fail loudly on a SimPy that differs.

:class:`sim.kernel.Environment` keeps its clock and event queue in a
:class:`~sim.kernel.events.Kernel`, so it relies on SimPy's events reaching the queue
only through ``Environment.schedule`` (and being fired through ``step``), on the
priorities ``URGENT`` and ``NORMAL``, and on an event being processed through
``callbacks``, ``_ok``, ``_value`` and ``_defused``.
pyproject.toml pins SimPy to the series these tests were written against.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import simpy
import simpy.core

from sim.kernel import Environment, events

ROOT = Path(__file__).resolve().parent.parent


def test_installed_simpy_is_in_the_pinned_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("simpy"))
    low, high = re.fullmatch(r"simpy>=([\d.]+),<([\d.]+)", pin).groups()  # type: ignore[union-attr]

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text)[:3])

    assert version(low) <= version(simpy.__version__) < version(high), (pin, simpy.__version__)


def test_the_private_fields_the_kernel_uses_exist() -> None:
    env = simpy.Environment()
    assert simpy.core.NORMAL == events.NORMAL == 1 and simpy.core.URGENT == events.URGENT == 0
    event = env.event()
    event.succeed(42)
    assert event._ok is True and event._value == 42
    failed = env.event()
    failed.defused = True
    assert hasattr(failed, "_defused")


def test_simpys_events_reach_the_queue_through_schedule_only() -> None:
    """Every kind of SimPy event the model uses lands in the kernel's queue, none in the
    environment's own (which only SimPy's ``schedule``, ``step`` and ``peek`` read)."""
    env = Environment()

    seen: list[float] = []

    def proc():  # type: ignore[no-untyped-def]
        yield env.timeout(1.0)
        yield env.timeout(1.0) | env.timeout(2.0)
        seen.append(env.now)
        yield env.all_of([env.timeout(0.5), env.timeout(0.25)])
        seen.append(env.now)

    env.process(proc())
    env.event().succeed()
    assert len(env.kernel) == 2 and env._queue == []  # the process start, the event
    env.run(until=10.0)
    assert seen == [2.0, 2.5]
    assert env._queue == [] and env.now == 10.0 and len(env.kernel) == 0  # 3.0's loser too


def test_schedule_orders_by_time_then_priority_then_insertion() -> None:
    env = Environment()
    fired: list[str] = []
    for name, priority, delay in [("late", 1, 2.0), ("n1", 1, 1.0), ("urgent", 0, 1.0),
                                  ("n2", 1, 1.0)]:
        event = env.event()
        event._ok, event._value = True, None
        event.callbacks.append(lambda _e, name=name: fired.append(name))
        env.schedule(event, priority, delay)
    assert env.peek() == 1.0
    env.run()
    assert fired == ["urgent", "n1", "n2", "late"] and env.now == 2.0


def _timeline(env: simpy.Environment) -> list[tuple[float, str]]:
    log: list[tuple[float, str]] = []

    def worker(name: str, gap: float):  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield env.timeout(gap)
            log.append((env.now, name))

    env.process(worker("a", 1.0))
    env.process(worker("b", 1.5))
    env.run(until=4.0)
    log.append((env.now, "end"))
    return log


def test_the_kernels_run_loop_steps_events_exactly_as_simpy_does() -> None:
    expected = _timeline(simpy.Environment())
    assert _timeline(Environment()) == expected
    # ties at 3.0 in scheduling order: b's timeout was scheduled (at 1.5) before a's (at 2.0)
    assert expected == [(1.0, "a"), (1.5, "b"), (2.0, "a"), (3.0, "b"), (3.0, "a"),
                        (4.0, "end")]
