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
it is a heap of :class:`_Entry` objects sifted here, whose comparisons are two machine
compares instead of two tuple comparisons. It is 4-ary (the children of ``i`` are
``4i + 1`` to ``4i + 4``): half the levels of a binary heap, so about half the entries
moved in a pop, for more comparisons, which are cheap. An entry holds a light event in
a typed field (``job``) and any other event in ``event``. An entry popped goes to a free
list (linked through the entries' ``nxt``: no list to pop or append to), emptied of its
event, and the next push takes it from there: a run allocates entries only while its
queue grows. Both representations give the same order: the ids
are unique, so the order is total and any correct heap pops the same sequence.
"""

from __future__ import annotations

from heapq import heappop, heappush
from itertools import count
from typing import TYPE_CHECKING, Any, Callable, Final, Iterator

if TYPE_CHECKING:  # compiled, heap positions are machine integers; plain Python, ints
    from mypy_extensions import i64

__all__ = ["Call", "Handler", "Kernel", "Light", "schedule"]

URGENT: Final = 0  # simpy.core.URGENT (tests/test_simpy_internals.py checks both)
NORMAL: Final = 1  # simpy.core.NORMAL
_PRIORITY: Final[i64] = 1 << 60  # key = id (urgent) or _PRIORITY + id orders as (priority, id)


def _probe() -> None:
    """Compiled by mypyc, a function has no ``__code__``."""


#: True where this module runs compiled (the heap of entries), False as plain Python.
NATIVE: Final[bool] = not hasattr(_probe, "__code__")


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


class _Entry:
    """One queued event of the compiled heap: a light one in ``job``, else in ``event``."""

    __slots__ = ("t", "key", "job", "event", "nxt")

    def __init__(self, t: float, key: i64, job: Light | None, event: object) -> None:
        self.t = t
        self.key = key
        self.job = job
        self.event = event
        self.nxt: _Entry | None = None  # the next free entry, while this one is free


def _sift_up(heap: list[_Entry], i: i64, entry: _Entry) -> None:
    """Put ``entry`` in the compiled heap's hole at ``i``, moving it up past every entry
    that comes after it (time, then key)."""
    t, key = entry.t, entry.key
    while i > 0:
        parent: i64 = (i - 1) >> 2
        above = heap[parent]
        if t < above.t or (t == above.t and key < above.key):
            heap[i] = above
            i = parent
        else:
            break
    heap[i] = entry


class Kernel:
    """A run's clock (``now``) and its event queue, in SimPy's order."""

    def __init__(self, now: float = 0.0) -> None:
        self.now: float = now
        self.eid: i64 = 0  # the next insertion id (SimPy's ``Environment._eid``), compiled
        #: As plain Python: the queue, kept by heapq, and the ids. The hot paths of the
        #: stations and the workload push onto it inline (a call costs the interpreter).
        self.tuples: list[tuple[float, int, int, object]] = []
        self.eids: Iterator[int] = count()
        self.heap: list[_Entry] = []  # compiled
        self.free: _Entry | None = None  # compiled: popped entries, to be reused (emptied)

    def __len__(self) -> int:
        return len(self.heap) + len(self.tuples)

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
        self._queue(t, key, None, event)

    def push_light(self, t: float, job: Light) -> None:
        """Queue the light event ``job`` at time ``t``, with SimPy's normal priority."""
        if not NATIVE:
            heappush(self.tuples, (t, NORMAL, next(self.eids), job))
            return
        eid = self.eid
        self.eid = eid + 1
        self._queue(t, eid + _PRIORITY, job, None)

    def _queue(self, t: float, key: i64, job: Light | None, event: object) -> None:
        """Compiled: put an entry (a free one if any) in the heap."""
        entry = self.free
        if entry is not None:
            self.free = entry.nxt
            entry.t = t
            entry.key = key
            entry.job = job
            entry.event = event
        else:
            entry = _Entry(t, key, job, event)
        heap = self.heap
        heap.append(entry)
        _sift_up(heap, len(heap) - 1, entry)

    def push_job(self, delay: float, job: Light, callbacks: list[Any]) -> None:
        """Schedule ``job`` itself, ``delay`` from now; ``callbacks`` (only read) get it.

        ``job`` must not already be in the event queue."""
        job.callbacks = callbacks
        self.push_light(self.now + delay, job)

    def peek(self) -> float:
        """The time of the next event, or infinity."""
        if not NATIVE:
            return self.tuples[0][0] if self.tuples else float("inf")
        return self.heap[0].t if self.heap else float("inf")

    def pop(self) -> object:
        """Remove the next event, advance the clock to it and return it (queue not empty)."""
        if not NATIVE:
            self.now, _, _, event = heappop(self.tuples)
            return event
        entry = self._take()
        job = entry.job
        entry.nxt = self.free
        self.free = entry
        if job is not None:
            entry.job = None  # the free list holds no event alive
            return job
        event = entry.event
        entry.event = None
        return event

    def _take(self) -> _Entry:
        """Compiled: remove the heap's first entry and advance the clock to it."""
        heap = self.heap
        top = heap[0]
        last = heap.pop()
        n: i64 = len(heap)
        if n:
            # Bottom-up, as heapq does: the hole at the top goes down to a leaf along the
            # smallest children, then ``last`` goes up from there, as a push does (it
            # belongs near the bottom: a level or two).
            i: i64 = 0
            child: i64 = 1
            while child < n:
                low = heap[child]
                end: i64 = child + 4
                if end > n:
                    end = n
                other_i: i64 = child + 1
                while other_i < end:
                    other = heap[other_i]
                    if other.t < low.t or (other.t == low.t and other.key < low.key):
                        child = other_i
                        low = other
                    other_i += 1
                heap[i] = low
                i = child
                child = 4 * i + 1
            _sift_up(heap, i, last)
        self.now = top.t
        return top

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
            entry = self._take()
            job = entry.job
            entry.nxt = self.free  # to the free list, emptied of its event below
            self.free = entry
            if job is not None:  # a light event (Kernel.fire's first case, inlined)
                entry.job = None
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
            event = entry.event
            entry.event = None
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
