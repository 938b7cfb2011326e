"""The query engine: a worker pool per zone, then the result-cache lookup.

An engine worker parses and plans the query and looks its result up in the cache (the
lookup is part of its service time); on a hit the answer goes back, on a miss the query
moves on to a connector worker and the engine worker is free again.

With ``miss_service_time`` a miss first costs the engine worker that much more CPU
(planning the pushdown, building the SaaS request) before the fetch: the control-plane
CPU that rises in a cache stampede (SOP-102). Without it the miss path has no extra step.

The engine's two hops are fields: ``lookup`` (the result cache's) and ``fetch`` (where a
miss goes: the connectors, or the control plane in front of them). The system wires
them; a read-through policy (soft caching, coalescing, XFetch) then stands in front of
both through :meth:`Engine.set_lookup` and :meth:`Engine.set_fetch`. While ``lookup`` is
the cache's own, the engine calls the cache directly: compiled, a call through the field
boxes the key and the time, once a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

from labcore.distributions import Constant
from labcore.scenario import Engine as EngineSpec

from ..kernel import Recorder, Station, Streams
from ..kernel.events import Kernel
from ..kernel.packed import NATIVE, Draws
from ..kernel.station import Job, Service
from .cache import ResultCache
from .request import OK, OVERLOAD, Attempt, Request

if TYPE_CHECKING:
    from ..kernel.environment import Environment
    from .client import Client
    from .zone import Zone

__all__ = ["Engine"]

_PLANNING: Final = 3  # attempt.phase while an engine worker plans a miss (connector uses 1, 2)


def _stand_in(zone: int) -> Callable[[float], Job]:
    """What an engine station serves in place of a dead attempt it kept as its queueing
    time alone (see :class:`sim.kernel.Station`): a dead attempt of nobody's. Nothing that
    serves or wraps an engine's service reads more of a dead attempt than that: ``_served``
    and ``_served_planning`` count it wasted (its phase is 0, as it is for every queued
    attempt), a release's ``version_of`` holds only live attempts, a gray failure's
    ``doomed`` set keys on the object it served, and ``Client.finish`` counts it wasted."""
    nobody = Request(-1, -1, -1, -1, -1, 0.0)

    def stand_in(t_enq: float) -> Job:
        attempt = Attempt(nobody, zone, t_enq)
        attempt.alive = False
        return attempt

    return stand_in


class Engine(Service):
    """Engine stations, one per zone, served by :meth:`serve` and :meth:`after`."""

    def __init__(self, env: "Environment", spec: EngineSpec, zones: list["Zone"],
                 cache: ResultCache, cache_latency: Callable[[], float] | None,
                 client: "Client", streams: Streams, recorder: Recorder) -> None:
        self.env, self.spec, self.cache, self.client = env, spec, cache, client
        self.kernel: Kernel = env.kernel
        self.recorder = recorder
        self.version = spec.version
        self.factor = 1.0  # latency injection
        self.cache_factor = 1.0
        self.fetch: Callable[[Attempt], None] = lambda attempt: None  # wired: the connectors
        self.lookup: Callable[[int, float], bool] = cache.lookup
        self._cache_lookup = self.lookup  # while ``lookup`` is this, call the cache directly
        # The service time is drawn inline (the sampler's buffer, refilled by blocks): this
        # runs once per request. Compiled, from a packed block instead (the same draws).
        service = streams.numpy("engine.service")
        self._buffer, self._refill = spec.service_time.buffered(service)
        self._draws = Draws(spec.service_time, service)
        latency = cache.spec.latency
        #: The cache lookup's share of the service time: none (no cache), a constant (the
        #: usual case: no sampler call), or a draw of ``cache_latency``.
        self._cache_latency = cache_latency
        self._cache_constant = latency.value if isinstance(latency, Constant) else 0.0
        self._lookup_time = (0 if cache_latency is None
                             else 1 if isinstance(latency, Constant) else 2)
        self.wasted = 0
        recorder.add_counters("engine", self, ("wasted",))
        self._planning = spec.miss_service_time is not None
        if spec.miss_service_time is not None:
            self._miss_time = spec.miss_service_time.sampler(streams.numpy("engine.miss"))
        self.stations = []
        for zone in zones:
            station = Station(env, f"{zone.name}.engine", spec.workers_per_zone,
                              self.serve, self.after, spec.queue_limit, spec.drop_expired,
                              _stand_in(zone.index))
            zone.add_station(station)
            self.stations.append(station)

    def set_fetch(self, fetch: Callable[[Attempt], None]) -> Callable[[Attempt], None]:
        """Send every miss to ``fetch``; returns the hop it replaces."""
        previous, self.fetch = self.fetch, fetch
        return previous

    def set_lookup(self, lookup: Callable[[int, float], bool]) -> Callable[[int, float], bool]:
        """Look every result up through ``lookup``; returns the one it replaces."""
        previous, self.lookup = self.lookup, lookup
        return previous

    def submit(self, attempt: Attempt) -> None:
        if not self.stations[attempt.zone].submit(attempt):
            self.client.finish(attempt, OVERLOAD)

    def _hit(self, key: int) -> bool:
        """Look ``key`` up now, through ``lookup`` (the cache itself while it is its own)."""
        if self.lookup is self._cache_lookup:
            return self.cache.lookup(key, self.kernel.now)
        return self.lookup(key, self.kernel.now)

    def serve(self, attempt: Attempt) -> float:
        """An engine worker's service time: parse and plan, then the cache lookup."""
        if NATIVE:
            work = self._draws.draw() * self.factor
        else:
            buffer = self._buffer
            work = (buffer.pop() if buffer else self._refill()) * self.factor
        kind = self._lookup_time
        if kind == 0:
            return work
        if kind == 1:
            return work + self._cache_constant * self.cache_factor
        cache_latency = self._cache_latency
        assert cache_latency is not None
        return work + cache_latency() * self.cache_factor

    def after(self, attempt: Attempt) -> float | None:
        """The worker is done: a hit goes back, a miss to ``fetch`` (after planning it,
        with ``miss_service_time``)."""
        if self._planning:
            return self._served_planning(attempt)
        self._served(attempt)
        return None

    def _served(self, attempt: Attempt) -> None:
        if not attempt.alive:
            self.wasted += 1
            return None
        if self._hit(attempt.request.key):
            self.client.finish(attempt, OK)
        else:
            self.fetch(attempt)
        return None

    def _served_planning(self, attempt: Attempt) -> float | None:
        """Like :meth:`_served`, but a miss holds the worker for ``miss_service_time``."""
        if attempt.phase == _PLANNING:
            attempt.phase = 0
            if attempt.alive:
                self.fetch(attempt)
            else:
                self.wasted += 1
            return None
        if not attempt.alive:
            self.wasted += 1
            return None
        if self._hit(attempt.request.key):
            self.client.finish(attempt, OK)
            return None
        attempt.phase = _PLANNING
        return self._miss_time() * self.factor
