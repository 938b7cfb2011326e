"""A SimPy environment whose ``run(until=time)`` steps events in one tight loop.

:meth:`simpy.Environment.run` calls :meth:`~simpy.Environment.step` once per event and
stops at ``until`` through an urgent stop event that raises ``StopSimulation``. With two
events per request on the data plane, that method call is a measurable share of a run.
:class:`Environment` does the same work inline: it schedules the same urgent stop
event (so events due at ``until`` are treated exactly as SimPy treats them), pops the
same queue in the same (time, priority, id) order, runs the same callbacks and crashes
on an undefused failed event as SimPy does. Processes, timeouts, conditions and
interrupts are SimPy's own, untouched. ``run()`` with no argument or with an event is
SimPy's.

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
from heapq import heappop
from typing import Any, Generator

import simpy
from simpy.core import URGENT

__all__ = ["Environment"]


class Environment(simpy.Environment):
    """:class:`simpy.Environment` with a faster ``run(until=<time>)``."""

    def __init__(self, initial_time: float = 0, collect_every: float | None = None) -> None:
        super().__init__(initial_time)
        self.collect_every = collect_every
        self._collector: simpy.Process | None = None

    def run(self, until: Any = None) -> Any:
        if until is None or isinstance(until, simpy.Event):
            return super().run(until)
        at = until if isinstance(until, int) else float(until)
        if at <= self._now:
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
        self.schedule(stop, URGENT, at - self._now)
        queue = self._queue
        while True:  # never empty: the stop event is in the queue until it is popped
            self._now, _, _, event = heappop(queue)
            if event is stop:
                return None
            callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
