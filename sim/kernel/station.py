"""A multi-server FIFO station: the queueing building block of every tier.

``capacity`` servers, an optional queue limit, and a service made of phases: ``serve(job)``
gives the first holding time; when it ends, ``after(job)`` either returns another holding
time (the server stays with the job: a connector waiting out a Retry-After) or ``None``
(the server is released and the job moves on). Jobs are :class:`Job` objects.
``serve`` and ``after`` are the station's strategy fields: set at construction, and
changed afterwards only through :meth:`set_serve` and :meth:`set_after` (a fault or a
release wrapping them), which return the phase they replace so it can be restored.
While a field holds a :class:`Service`'s own method (the engine's, the connectors'), the
station calls that method directly: compiled, a call through the field is a generic
Python call, and a job makes two.

A station can fail (all its work is lost, completions already scheduled are ignored
through a generation counter) and be restored. Busy time is integrated exactly for
utilisation; waits are summed for the mean queue wait. A job is scheduled as its own
completion event (see :mod:`sim.kernel.events`), and typed, so that compiled, its
fields are read without a dictionary lookup.

A station given a ``stand_in`` keeps its dead queued jobs (``alive`` false: nobody waits
for them any more) as their queueing times alone, in runs of consecutive dead jobs
(:class:`DeadRun`, 8 bytes a job), compacted whenever the queue has doubled since the
last compaction. When such a job's turn comes, ``stand_in(t_enq)`` makes the dead job that
is served in its place: to ``serve``, ``after`` and whatever wraps them it must be
indistinguishable from the job it replaces. An overloaded station then holds its
abandoned work at 8 bytes a job instead of the job objects (and whatever they alone keep
alive); ``len(queue)`` counts runs as one entry each: :meth:`Station.queued` is the count
of jobs.
"""

from __future__ import annotations

from array import array
from collections import deque
from heapq import heappush
from typing import TYPE_CHECKING, Any, Callable

from .events import NATIVE, NORMAL, Handler, Kernel, Light

if TYPE_CHECKING:
    from .environment import Environment

__all__ = ["DeadRun", "Job", "Service", "Station"]

_COMPACT_MIN = 1024  # a station with a stand-in compacts its queue from this length on


class Job(Light):
    """What a station serves: a light event (its own completion) that remembers the
    station's generation when it started (``gen``), when it was queued (``t_enq``) and
    whether anyone still waits for it (``alive``)."""

    __slots__ = ("gen", "t_enq", "alive")

    def __init__(self, t_enq: float) -> None:
        self.callbacks = None
        self.handler = None
        self.gen = 0
        self.t_enq = t_enq
        self.alive = True


class DeadRun(Job):
    """Consecutive dead jobs in a station's queue, kept as their queueing times
    (``times[head:]``, oldest first)."""

    __slots__ = ("times", "head")

    def __init__(self) -> None:
        super().__init__(0.0)
        self.alive = False
        self.times = array("d")
        self.head = 0


class Service:
    """A component that serves stations with its own methods :meth:`serve` (the first
    phase's holding time) and :meth:`after` (the next phase's, or ``None``): given them
    as a station's ``serve`` and ``after``, the station calls them natively."""

    def serve(self, job: Any) -> float:
        raise NotImplementedError

    def after(self, job: Any) -> float | None:
        raise NotImplementedError


def _own(phase: Callable[[Any], object], name: str) -> Service | None:
    """The :class:`Service` whose own method ``name`` ``phase`` is, or ``None``."""
    owner = getattr(phase, "__self__", None)
    if isinstance(owner, Service) and phase == getattr(owner, name):
        return owner
    return None


class Station(Handler):
    """A FIFO queue in front of ``capacity`` identical servers. It handles its jobs'
    completion events itself (:meth:`on_light`: a phase ended)."""

    def __init__(
        self,
        env: Environment,
        name: str,
        capacity: int,
        serve: Callable[[Any], float],
        after: Callable[[Any], float | None],
        queue_limit: int | None = None,
        drop_expired: bool = False,
        stand_in: Callable[[float], Job] | None = None,
    ) -> None:
        self.env, self.name, self.capacity = env, name, capacity
        self.kernel: Kernel = env.kernel
        self.serve, self.after = serve, after
        self._serves = _own(serve, "serve")  # while serve is a Service's own: called directly
        self._afters = _own(after, "after")
        self.queue_limit = queue_limit
        self.drop_expired = drop_expired
        self.queue: deque[Job] = deque()
        self.stand_in = stand_in
        self._in_runs = 0  # queued jobs kept in DeadRuns beyond one entry a run
        self._compact_at = _COMPACT_MIN if stand_in is not None else -1
        self.busy = 0
        self.gen = 0
        # Statistics, read and reset by the recorder at each window boundary.
        self.busy_area = 0.0
        self.capacity_area = 0.0
        self._last = self.kernel.now  # busy_area is integrated up to here
        self._cap_last = self.kernel.now  # capacity_area is integrated up to here
        self.started = 0
        self.waited = 0
        self.wait_sum = 0.0
        self.rejected = 0
        self.dropped = 0
        #: Positive waits of this window (binned by the recorder), or ``None``: not kept.
        self.waits: list[float] | None = None

    def __repr__(self) -> str:
        return f"Station({self.name!r}, busy={self.busy}/{self.capacity}, queued={self.queued()})"

    def queued(self) -> int:
        """Jobs waiting in the queue."""
        return len(self.queue) + self._in_runs

    def submit(self, job: Job) -> bool:
        """Queue or start ``job``; ``False`` if the queue is full or the station is down."""
        kernel = self.kernel
        now = job.t_enq = kernel.now
        if self.busy < self.capacity:  # _start without a wait, inlined: the hot path
            self.busy_area += self.busy * (now - self._last)
            self._last = now
            self.busy += 1
            self.started += 1
            job.gen = self.gen
            job.handler = self
            own = self._serves
            t = now + (own.serve(job) if own is not None else self.serve(job))
            if NATIVE:
                kernel.push_light(t, job)
            else:  # Kernel.push, inlined
                heappush(kernel.tuples, (t, NORMAL, next(kernel.eids), job))
            return True
        queue = self.queue
        if self.capacity == 0 or (
            self.queue_limit is not None and self.queued() >= self.queue_limit
        ):
            self.rejected += 1
            return False
        queue.append(job)
        if len(queue) == self._compact_at:
            self._compact()
        return True

    def _start(self, job: Job, now: float) -> None:
        self.busy_area += self.busy * (now - self._last)
        self._last = now
        self.busy += 1
        self.started += 1
        wait = now - job.t_enq
        if wait > 0.0:
            self.waited += 1
            self.wait_sum += wait
            if self.waits is not None:  # opt-in: only jobs that waited pay for it
                self.waits.append(wait)
        job.gen = self.gen
        # The job is its own completion event, handled here (on_light).
        job.handler = self
        kernel = self.kernel
        own = self._serves
        t = now + (own.serve(job) if own is not None else self.serve(job))
        if NATIVE:
            kernel.push_light(t, job)
        else:  # Kernel.push, inlined
            heappush(kernel.tuples, (t, NORMAL, next(kernel.eids), job))

    def on_light(self, job: Job) -> None:
        """A phase of ``job`` ended: another, or the server goes to the next job."""
        if job.gen != self.gen:
            return  # the station failed while this job was in service
        own = self._afters
        more = own.after(job) if own is not None else self.after(job)
        now = self.kernel.now
        if more is not None:
            job.handler = self
            self.kernel.push_light(now + more, job)
            return
        self.busy_area += self.busy * (now - self._last)
        self._last = now
        self.busy -= 1
        queue = self.queue
        while queue and self.busy < self.capacity:
            nxt = queue.popleft()
            if type(nxt) is DeadRun:
                nxt = self._from_run(nxt)
            if self.drop_expired and not nxt.alive:
                self.dropped += 1
                continue
            self._start(nxt, now)

    def set_serve(self, serve: Callable[[Any], float]) -> Callable[[Any], float]:
        """Install ``serve`` as the first phase of every job started from now; returns the
        one it replaces."""
        previous, self.serve = self.serve, serve
        self._serves = _own(serve, "serve")
        return previous

    def set_after(self, after: Callable[[Any], float | None]) -> Callable[[Any], float | None]:
        """Install ``after`` for every phase ending from now; returns the one it replaces."""
        previous, self.after = self.after, after
        self._afters = _own(after, "after")
        return previous

    def fail(self) -> int:
        """Lose every server and queued job; return how many jobs were queued (in-service
        ones are the caller's to account for). Completions already scheduled become
        no-ops. The lost jobs are not handed back: dead ones kept as times would have to be
        made again, one stand-in each, only to be dropped."""
        self.sample_areas()
        lost = self.queued()
        self.queue.clear()
        self._in_runs = 0
        self.gen += 1
        self.busy = 0
        self.capacity = 0
        return lost

    def resize(self, capacity: int) -> None:
        """Change the number of servers now: jobs in service finish (even above the new
        capacity); queued jobs start at once if there is room."""
        self.sample_areas()
        self.capacity = capacity
        now, queue = self.kernel.now, self.queue
        while queue and self.busy < self.capacity:
            nxt = queue.popleft()
            if type(nxt) is DeadRun:
                nxt = self._from_run(nxt)
            if self.drop_expired and not nxt.alive:
                self.dropped += 1
                continue
            self._start(nxt, now)

    def _from_run(self, run: DeadRun) -> Job:
        """The first job of ``run`` (just popped off the queue): its stand-in; the rest of
        the run goes back to the front of the queue."""
        times = run.times
        t_enq = times[run.head]
        run.head += 1
        if run.head < len(times):
            self._in_runs -= 1
            if run.head >= 4096 and 2 * run.head >= len(times):
                del times[: run.head]  # amortised: what was served leaves the array
                run.head = 0
            self.queue.appendleft(run)
        stand_in = self.stand_in
        assert stand_in is not None
        return stand_in(t_enq)

    def _compact(self) -> None:
        """Keep the queue's dead jobs as runs of queueing times (the order is unchanged);
        the next compaction comes when the queue has doubled again."""
        queue = self.queue
        kept: list[Job] = []
        run: DeadRun | None = None  # the run the next dead job joins, if it is dead
        for job in queue:
            if type(job) is DeadRun:
                if run is None:
                    run = job
                    kept.append(run)
                else:  # two runs met: the live jobs between them have died
                    run.times.extend(job.times[job.head:])
            elif not job.alive:
                if run is None:
                    run = DeadRun()
                    kept.append(run)
                run.times.append(job.t_enq)
            else:
                run = None
                kept.append(job)
        in_runs = 0
        for job in kept:
            if type(job) is DeadRun:
                in_runs += len(job.times) - job.head - 1
        queue.clear()
        queue.extend(kept)
        self._in_runs = in_runs
        self._compact_at = max(_COMPACT_MIN, 2 * len(queue))

    def restore(self, capacity: int) -> None:
        self.sample_areas()
        self.capacity = capacity

    def sample_areas(self) -> None:
        """Bring the busy and capacity integrals up to now (called at window boundaries)."""
        now = self.kernel.now
        self.busy_area += self.busy * (now - self._last)
        self.capacity_area += self.capacity * (now - self._cap_last)
        self._last = self._cap_last = now
