"""SimPy's internals that ``sim.kernel`` relies on: fail loudly on a SimPy that differs.

The kernel's fast run loop (:mod:`sim.kernel.environment`) and light events
(:mod:`sim.kernel.events`, :mod:`sim.kernel.station`) push ``(time, priority, id, event)``
tuples on ``Environment._queue`` with ``next(Environment._eid)``, read ``_now``, and rely on
an event being processed through ``callbacks``, ``_ok``, ``_value`` and ``_defused``.
pyproject.toml pins SimPy to the series these tests were written against.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path

import simpy
import simpy.core

from sim.kernel import Environment

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
    assert simpy.core.NORMAL == 1 and simpy.core.URGENT == 0
    assert env._now == 0 and isinstance(env._queue, list)
    assert isinstance(env._eid, itertools.count)
    event = env.event()
    event.succeed(42)
    assert event._ok is True and event._value == 42
    failed = env.event()
    failed.defused = True
    assert hasattr(failed, "_defused")


def test_schedule_pushes_the_tuple_the_kernel_pushes_itself() -> None:
    env = simpy.Environment()
    event = env.event()
    env.schedule(event, simpy.core.NORMAL, 2.5)
    (entry,) = env._queue
    assert len(entry) == 4 and entry[0] == 2.5 and entry[1] == simpy.core.NORMAL
    assert entry[3] is event


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
