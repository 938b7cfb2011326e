"""Light events: a callback at a future simulated time, without a SimPy process.

A request must not cost a SimPy process (a generator plus about six events): the data
plane is driven by callbacks on these minimal events, scheduled on SimPy's own queue
so that ordering (time, priority, insertion counter) stays SimPy's deterministic one.

``Environment.step`` needs only ``callbacks`` and ``_ok`` of an event, so a job that
carries those slots can be scheduled as its own event (:func:`schedule_job`), which
saves an allocation per hop on the hot path.
"""

from __future__ import annotations

from heapq import heappush
from typing import Any, Callable

import simpy
from simpy.core import NORMAL

__all__ = ["Call", "schedule", "schedule_job"]


class Call:
    """What SimPy's ``Environment.step`` needs of an event, and a payload."""

    __slots__ = ("callbacks", "job", "gen")
    _ok = True  # never fails, carries no value: all that SimPy's step reads besides callbacks
    _value = None

    def __init__(self, callback: Callable[["Call"], None], job: Any, gen: int) -> None:
        self.callbacks: list[Callable[[Call], None]] | None = [callback]
        self.job = job
        self.gen = gen


def schedule(
    env: simpy.Environment, delay: float, callback: Callable[[Call], None], job: Any, gen: int = 0
) -> Call:
    """Call ``callback(call)`` after ``delay`` simulated seconds; ``call.job`` is ``job``."""
    call = Call(callback, job, gen)
    # Environment.schedule, inlined: this is the hottest call of the simulator.
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), call))  # type: ignore[attr-defined,misc]
    return call


def schedule_job(env: simpy.Environment, delay: float, job: Any, callbacks: list) -> None:
    """Schedule ``job`` itself as an event; ``callbacks`` (a list SimPy only reads) gets it.

    ``job`` must have a ``callbacks`` slot, ``_ok`` true and ``_value`` (class attributes
    will do) and must not already be in the event queue."""
    job.callbacks = callbacks
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), job))  # type: ignore[attr-defined,misc]
