"""A SimPy environment whose clock and event queue are the kernel's (:class:`Kernel`).

In SimPy, only :class:`simpy.Environment`'s own methods touch its queue and clock:
``schedule`` (every event, timeout and process start goes through it), ``step`` and
``peek`` read the queue, and everything else reads the clock through ``now``.
:class:`Environment` overrides those four to use its :attr:`~Environment.kernel`, where
the model's light events are queued too, so that one queue orders both by SimPy's rule
(time, priority, insertion order). ``tests/test_simpy_internals.py`` checks this.
Processes, timeouts, conditions and interrupts are SimPy's own, untouched.

``run(until=<time>)`` schedules the same urgent stop event as
:meth:`simpy.Environment.run` (so events due at ``until`` are treated exactly as SimPy
treats them) and then lets the kernel fire events in one tight loop, instead of one
``step`` call per event. ``run()`` with no argument or with an event is SimPy's, on
this class's ``step``.

Garbage: CPython's cyclic collector runs every 700 net container allocations and, now
and then, walks every object alive (the model, numpy, pydantic...). A run allocates two
short-lived containers per request that die by reference counting, so those walks are
pure cost (about 6% of a run's instructions). With ``collect_every`` set, ``run``
switches the automatic collector off and collects the young generations once per
``collect_every`` simulated seconds instead, so cyclic garbage stays bounded by what one
interval makes; the collector's state is restored when ``run`` returns. The model makes
no cycles per request (a request and its attempts are freed by reference counting).
"""

from __future__ import annotations

import gc
from typing import Any, Generator

import simpy
from simpy.core import URGENT, EmptySchedule

from .events import Kernel

__all__ = ["Environment"]


class Environment(simpy.Environment):
    """:class:`simpy.Environment` on the kernel's clock and queue, with a faster
    ``run(until=<time>)``."""

    def __init__(self, initial_time: float = 0, collect_every: float | None = None) -> None:
        super().__init__(initial_time)
        #: The clock and the event queue: the model's hot path uses them directly.
        self.kernel = Kernel(float(initial_time))
        self.collect_every = collect_every
        self._collector: simpy.Process | None = None

    @property
    def now(self) -> float:
        return self.kernel.now

    def schedule(self, event: simpy.Event, priority: int = simpy.core.NORMAL,
                 delay: float = 0) -> None:
        kernel = self.kernel
        kernel.push(kernel.now + delay, priority, event)

    def peek(self) -> float:
        return self.kernel.peek()

    def step(self) -> None:
        kernel = self.kernel
        if not len(kernel):
            raise EmptySchedule()
        kernel.fire(kernel.pop())

    def run(self, until: Any = None) -> Any:
        if until is None or isinstance(until, simpy.Event):
            return super().run(until)
        at = until if isinstance(until, int) else float(until)
        if at <= self.kernel.now:
            raise ValueError(
                f"until ({at}) must be greater than the current simulation time"
            )
        if self.collect_every is None or not gc.isenabled():
            return self._run_until(at)
        if self._collector is None:
            self._collector = self.process(self._collect(self.collect_every))
        gc.disable()
        try:
            return self._run_until(at)
        finally:
            gc.enable()

    def _collect(self, every: float) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.timeout(every)
            gc.collect(1)

    def _run_until(self, at: float) -> None:
        stop = simpy.Event(self)
        stop._ok = True
        stop._value = None
        self.schedule(stop, URGENT, at - self.kernel.now)
        self.kernel.run_until(stop)
