"""The connector fleet: stateless workers per zone calling SaaS providers.

A worker holds its slot for the whole provider interaction. On a 429 it may wait out
the provider's Retry-After (capped at ``max_wait``) and call again, still holding the
slot: this is how a rate-limit flood ties up the shared pool and hurts other tenants.
A successful fetch writes the result to the cache. ``enabled: false`` makes SaaS calls
instant, which turns the tier off for textbook checks.

Every fetch ends through ``finish``, a field: the client's, or a read-through policy's
once coalescing or soft caching is on (installed through :meth:`Connectors.set_finish`,
see :mod:`sim.model.cache`). Per window the fleet counts fetches (jobs), provider calls
(a fetch re-calls after a 429), the distinct keys fetched, called yet or not (fetches or
calls per key show a stampede), and per tenant the worker-seconds held (calls and
Retry-After waits): what the runbook's dashboard ranks tenants by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

from labcore.scenario import Connectors as ConnectorSpec

from ..kernel import Recorder, Station
from ..kernel.events import Kernel
from ..kernel.station import Service
from .cache import ResultCache
from .provider import Provider
from .request import OK, OVERLOAD, RATE_LIMITED, TIMEOUT, UNAUTHORIZED, Attempt

if TYPE_CHECKING:
    from ..kernel.environment import Environment
    from .client import Client
    from .zone import Zone

__all__ = ["Connectors", "ConnectorFacts"]

_CALLING: Final = 1
_WAITING: Final = 2


class Connectors(Service):
    """Connector stations, one per zone, served by :meth:`serve` (a provider call) and
    :meth:`after`, and the providers they call."""

    def __init__(self, env: "Environment", spec: ConnectorSpec, zones: list["Zone"],
                 providers: list[Provider], target_provider: list[int], cache: ResultCache,
                 client: "Client", recorder: Recorder) -> None:
        self.env, self.spec, self.cache, self.client = env, spec, cache, client
        self.kernel: Kernel = env.kernel
        self.recorder = recorder
        self.providers = providers
        self.target_provider = target_provider  # target index → provider index
        self.stations = []
        n_tenants = len(recorder.tenants)
        #: Where a fetch ends: the client, unless a read-through policy stands in front
        #: of it (only through :meth:`set_finish`).
        self.finish: Callable[[Attempt, int], None] = client.finish
        self.calls = self.timeouts = self.fetches = 0
        self.rate_limited, self.unauthorized = [0] * n_tenants, [0] * n_tenants
        self.held = [0.0] * n_tenants  # worker-seconds per tenant
        self.keys: set[int] = set()  # distinct keys fetched in this window
        recorder.add_counters("connector", self, ("calls", "timeouts", "fetches", "rate_limited",
                                                  "unauthorized"))
        recorder.add_counters("connector", ConnectorFacts(self), ("held_ms", "keys"))
        if spec.enabled:
            for zone in zones:
                station = Station(env, f"{zone.name}.connector", spec.workers_per_zone,
                                  self.serve, self.after, spec.queue_limit)
                zone.add_station(station)
                self.stations.append(station)

    def set_finish(self, finish: Callable[[Attempt, int], None]) -> Callable[[Attempt, int], None]:
        """End every fetch through ``finish``; returns the hop it replaces."""
        previous, self.finish = self.finish, finish
        return previous

    def submit(self, attempt: Attempt) -> None:
        self.fetches += 1  # one fetch: its provider calls include Retry-After re-calls
        # Its key counts from here, called or not: a fetch that waits out its client in the
        # queue is still a fetch for that key (the stand-in's connector counts the same).
        self.keys.add(attempt.request.key)
        if not self.spec.enabled:
            self.cache.store(attempt.request.key, self.kernel.now)
            self.finish(attempt, OK)
        elif not self.stations[attempt.zone].submit(attempt):
            self.finish(attempt, OVERLOAD)

    def serve(self, attempt: Attempt) -> float:
        """Call the provider now; the outcome is known when the answer arrives."""
        request = attempt.request
        provider = self.providers[self.target_provider[request.target]]
        attempt.calls += 1
        attempt.phase = _CALLING
        self.calls += 1
        outcome, latency = provider.call(request.tenant, self.kernel.now)
        if latency > self.spec.timeout:
            outcome, latency = TIMEOUT, self.spec.timeout
            self.timeouts += 1
        elif outcome == RATE_LIMITED:
            self.rate_limited[request.tenant] += 1
        elif outcome == UNAUTHORIZED:
            self.unauthorized[request.tenant] += 1
        attempt.outcome = outcome
        self.held[request.tenant] += latency
        return latency

    def after(self, attempt: Attempt) -> float | None:
        """A call's answer arrived, or a Retry-After wait ended: call again, wait, or
        end the fetch."""
        retries = self.spec.retries
        if attempt.phase == _WAITING:
            return self.serve(attempt)
        if (
            attempt.outcome == RATE_LIMITED
            and attempt.alive
            and retries.honour_retry_after
            and attempt.calls < retries.max_attempts
        ):
            attempt.phase = _WAITING
            provider = self.providers[self.target_provider[attempt.request.target]]
            wait = min(provider.retry_after, retries.max_wait)
            self.held[attempt.request.tenant] += wait
            return wait
        if attempt.outcome == OK:
            self.cache.store(attempt.request.key, self.kernel.now)
        self.finish(attempt, attempt.outcome)
        return None


class ConnectorFacts:
    """The connector's non-integer facts as the recorder's integer counters: per-tenant
    held time in milliseconds, and the number of distinct keys fetched."""

    def __init__(self, connectors: Connectors) -> None:
        self.connectors = connectors

    @property
    def held_ms(self) -> list[int]:
        return [round(seconds * 1000.0) for seconds in self.connectors.held]

    @held_ms.setter
    def held_ms(self, value: list[int]) -> None:
        self.connectors.held = [0.0] * len(value)

    @property
    def keys(self) -> int:
        return len(self.connectors.keys)

    @keys.setter
    def keys(self, value: int) -> None:
        self.connectors.keys = set()
