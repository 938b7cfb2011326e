"""The event queue, the clock and light events: callbacks at a future time, no process.

:class:`Kernel` is a run's clock and its one event queue. SimPy's own events (timeouts,
processes, conditions) reach it through :class:`sim.kernel.Environment`, whose
``schedule``, ``step`` and ``now`` delegate here, so every event, light or not, is
ordered by SimPy's rule: time, then priority (urgent first), then insertion order.

A request must not cost a SimPy process (a generator plus about six events): the data
plane is driven by :class:`Light` events, which carry the callback list SimPy's events
carry, or instead a :class:`Handler`: the component that scheduled the event, whose
:meth:`Handler.on_light` the kernel calls with it. Compiled, that is a native method
call, where a callback from a list is a generic Python call (a bound method, its
arguments parsed): a station's phases and the workload's arrivals, the two light events
of nearly every request, are handled so. A job that is itself a :class:`Light` (a
request, an attempt) is scheduled as its own event (:meth:`Kernel.push_job`), which saves
an allocation per hop. The model queues its light events with :meth:`Kernel.push_light`,
which tells the queue they are light, so that compiled, firing one needs no type test.

One source, two representations of the queue. Run as plain Python, it is a heap of
``(time, priority, id, event)`` tuples kept by :mod:`heapq` (in C). Compiled by mypyc,
it is a heap sifted here in three packed arrays (:mod:`sim.kernel.packed`): the entries'
times, their keys (priority and id in one integer) and their slots. An entry's event
sits still in a slot of ``lights`` (a light event) or of ``others`` (any other event);
the slot's number, times two, plus one for a light event, is what the heap moves. A
sift reads and moves machine numbers side by side in memory, where a heap of objects
made it follow a pointer to each entry it compared (a miss of the processor's cache,
on a queue of thousands) and count references to each it moved; and firing a light
event needs no type test. A popped entry's slot is vacated (emptied, and stacked in
``vacant``) and the next push takes it: a run allocates only while its queue grows. The
heap is 4-ary (the children of ``i`` are ``4i + 1`` to ``4i + 4``): half the levels of a
binary heap, so about half the entries moved in a pop, for more comparisons, which are
cheap and, four children in a row, in one or two cache lines. Both representations give
the same order: the ids are unique, so the order is total and any correct heap pops the
same sequence.
"""

from __future__ import annotations

from heapq import heappop, heappush
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, Final, Iterator

from .packed import NATIVE as NATIVE
from .packed import floats, grown_floats, grown_ints, ints

if TYPE_CHECKING:  # compiled, heap positions are machine integers; plain Python, ints
    from librt.vecs import vec
    from mypy_extensions import i64

__all__ = ["Call", "Handler", "Kernel", "Light", "schedule"]

URGENT: Final = 0  # simpy.core.URGENT (tests/test_simpy_internals.py checks both)
NORMAL: Final = 1  # simpy.core.NORMAL
_PRIORITY: Final[i64] = 1 << 60  # key = id (urgent) or _PRIORITY + id orders as (priority, id)
_FIRST: Final[i64] = 1024  # the compiled heap's first capacity, doubled as the queue grows


class Light:
    """An event the kernel fires without SimPy: its ``handler``'s :meth:`Handler.on_light`
    if it has one, else its callbacks, each called with it."""

    __slots__ = ("callbacks", "handler")

    def __init__(self) -> None:
        self.callbacks: list[Any] | None = None
        self.handler: Handler | None = None


class Handler:
    """A component that handles the light events it schedules itself: it sets an event's
    ``handler`` to itself, and the kernel calls :meth:`on_light` with the event when it
    fires (once: the kernel clears ``handler`` first, so the call may schedule it again)."""

    def on_light(self, job: Any) -> None:
        raise NotImplementedError


class Call(Light):
    """A callback at a future time and its payload."""

    __slots__ = ("job", "gen")

    def __init__(self, callback: Callable[[Call], None], job: Any, gen: int) -> None:
        self.callbacks = [callback]
        self.handler = None
        self.job = job
        self.gen = gen


class Kernel:
    """A run's clock (``now``) and its event queue, in SimPy's order."""

    def __init__(self, now: float = 0.0) -> None:
        self.now: float = now
        self.eid: i64 = 0  # the next insertion id (SimPy's ``Environment._eid``), compiled
        #: As plain Python: the queue, kept by heapq, and the ids. The hot paths of the
        #: stations and the workload push onto it inline (a call costs the interpreter).
        self.tuples: list[tuple[float, int, int, object]] = []
        self.eids: Iterator[int] = count()
        #: Compiled: the heap's ``size`` entries, as times, keys and slot codes (slot * 2,
        #: + 1 for a light event), each array ``_FIRST`` or more long; and the slots.
        self.size: i64 = 0
        self.times: vec[float] = floats(_FIRST if NATIVE else 0, 0.0)
        self.keys: vec[i64] = ints(_FIRST if NATIVE else 0)
        self.codes: vec[i64] = ints(_FIRST if NATIVE else 0)
        self.lights: list[Light | None] = []
        self.others: list[object] = []
        self.vacant: vec[i64] = ints(_FIRST if NATIVE else 0)  # a stack of ``n_vacant``
        self.n_vacant: i64 = 0

    def __len__(self) -> int:
        return self.size + len(self.tuples)

    def push(self, t: float, priority: int, event: object) -> None:
        """Queue ``event`` at time ``t`` (not a delay)."""
        if not NATIVE:
            heappush(self.tuples, (t, priority, next(self.eids), event))
            return
        eid = self.eid
        if priority == NORMAL:  # an addition: mypyc multiplies large ints as objects
            key = eid + _PRIORITY
        elif priority == URGENT:
            key = eid
        else:
            raise ValueError(f"priority {priority}: SimPy has only URGENT (0) and NORMAL (1)")
        self.eid = eid + 1
        slot = self._slot()
        self.others[slot] = event
        self._queue(t, key, slot * 2)

    def push_light(self, t: float, job: Light) -> None:
        """Queue the light event ``job`` at time ``t``, with SimPy's normal priority."""
        if not NATIVE:
            heappush(self.tuples, (t, NORMAL, next(self.eids), job))
            return
        eid = self.eid
        self.eid = eid + 1
        slot = self._slot()
        self.lights[slot] = job
        self._queue(t, eid + _PRIORITY, slot * 2 + 1)

    def _slot(self) -> i64:
        """Compiled: an empty slot for a push, the last one vacated, or else a new one
        (of both ``lights`` and ``others``)."""
        n = self.n_vacant
        if n:
            n -= 1
            self.n_vacant = n
            return self.vacant[n]
        self.lights.append(None)
        self.others.append(None)
        return len(self.lights) - 1

    def _queue(self, t: float, key: i64, code: i64) -> None:
        """Compiled: put an entry in the heap, growing its arrays if full."""
        size = self.size
        if size == len(self.times):
            self.times = grown_floats(self.times, 2 * size)
            self.keys = grown_ints(self.keys, 2 * size)
            self.codes = grown_ints(self.codes, 2 * size)
        self.size = size + 1
        self._sift_up(size, t, key, code)

    def _sift_up(self, i: i64, t: float, key: i64, code: i64) -> None:
        """Compiled: put an entry in the heap's hole at ``i``, moving it up past every
        entry that comes after it (time, then key)."""
        times, keys, codes = self.times, self.keys, self.codes
        while i > 0:
            parent: i64 = (i - 1) >> 2
            above = times[parent]
            if t < above or (t == above and key < keys[parent]):
                times[i] = above
                keys[i] = keys[parent]
                codes[i] = codes[parent]
                i = parent
            else:
                break
        times[i] = t
        keys[i] = key
        codes[i] = code

    def push_job(self, delay: float, job: Light, callbacks: list[Any]) -> None:
        """Schedule ``job`` itself, ``delay`` from now; ``callbacks`` (only read) get it.

        ``job`` must not already be in the event queue."""
        job.callbacks = callbacks
        self.push_light(self.now + delay, job)

    def peek(self) -> float:
        """The time of the next event, or infinity."""
        if not NATIVE:
            return self.tuples[0][0] if self.tuples else float("inf")
        return self.times[0] if self.size else float("inf")

    def pop(self) -> object:
        """Remove the next event, advance the clock to it and return it (queue not empty)."""
        if not NATIVE:
            self.now, _, _, event = heappop(self.tuples)
            return event
        code = self._take()
        slot = code >> 1
        self._vacate(slot)
        if code & 1:
            job = self.lights[slot]
            self.lights[slot] = None  # a vacant slot holds no event alive
            return job
        event = self.others[slot]
        self.others[slot] = None
        return event

    def _take(self) -> i64:
        """Compiled: remove the heap's first entry, advance the clock to it and return
        its slot code (the slot is still to vacate)."""
        times, keys, codes = self.times, self.keys, self.codes
        code = codes[0]
        self.now = times[0]
        n: i64 = self.size - 1
        self.size = n
        if n:
            # Bottom-up, as heapq does: the hole at the top goes down to a leaf along the
            # smallest children, then the last entry goes up from there, as a push does
            # (it belongs near the bottom: a level or two).
            i: i64 = 0
            child: i64 = 1
            while child < n:
                best = child
                low = times[child]
                low_key = keys[child]
                end: i64 = child + 4
                if end > n:
                    end = n
                other: i64 = child + 1
                while other < end:
                    t = times[other]
                    if t < low or (t == low and keys[other] < low_key):
                        best = other
                        low = t
                        low_key = keys[other]
                    other += 1
                times[i] = low
                keys[i] = low_key
                codes[i] = codes[best]
                i = best
                child = 4 * i + 1
            self._sift_up(i, times[n], keys[n], codes[n])
        return code

    def _vacate(self, slot: i64) -> None:
        """Compiled: stack ``slot`` for the next push (its event is still to clear)."""
        n = self.n_vacant
        if n == len(self.vacant):
            self.vacant = grown_ints(self.vacant, 2 * n)
        self.vacant[n] = slot
        self.n_vacant = n + 1

    def fire(self, event: Any) -> None:
        """Run ``event``'s callbacks (a light event's handler), as SimPy's
        ``Environment.step`` does, and raise its failure if nothing defused it."""
        if isinstance(event, Light):
            handler = event.handler
            if handler is not None:
                event.handler = None
                handler.on_light(event)
                return
            callbacks = event.callbacks
            event.callbacks = None
            for callback in callbacks:  # type: ignore[union-attr]
                callback(event)
            return
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc

    def run_until(self, stop: object) -> None:
        """Fire events in order until ``stop`` (already queued) is popped."""
        if not NATIVE:  # pop and fire inlined: a method call per event costs the interpreter
            tuples = self.tuples
            while True:
                self.now, _, _, event = heappop(tuples)
                if event is stop:
                    return
                if isinstance(event, Light):
                    handler = event.handler
                    if handler is not None:
                        event.handler = None
                        handler.on_light(event)
                        continue
                    callbacks = event.callbacks
                    event.callbacks = None
                    for callback in callbacks:  # type: ignore[union-attr]
                        callback(event)
                else:
                    self.fire(event)
        while True:  # never empty: stop is in the queue until it is popped
            code = self._take()
            slot = code >> 1
            self._vacate(slot)
            if code & 1:  # a light event (Kernel.fire's first case, inlined)
                job = self.lights[slot]
                self.lights[slot] = None  # a vacant slot holds no event alive
                assert job is not None
                handler = job.handler
                if handler is not None:
                    job.handler = None
                    handler.on_light(job)
                    continue
                callbacks = job.callbacks
                job.callbacks = None
                for callback in callbacks:  # type: ignore[union-attr]
                    callback(job)
                continue
            event = self.others[slot]
            self.others[slot] = None
            if event is stop:
                return
            self.fire(event)  # compiled, a direct call


def schedule(
    kernel: Kernel, delay: float, callback: Callable[[Call], None], job: Any, gen: int = 0
) -> Call:
    """Call ``callback(call)`` after ``delay`` simulated seconds; ``call.job`` is ``job``."""
    call = Call(callback, job, gen)
    kernel.push_light(kernel.now + delay, call)
    return call
