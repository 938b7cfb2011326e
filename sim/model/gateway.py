"""The gateway: the load balancer's health checks, routing, and per-user admission.

The load balancer spreads attempts over the zones it believes healthy: uniformly at
random by default, or by round robin, least outstanding requests or the power of two
choices (``routing``; outstanding = attempts routed to the zone and not yet ended, as
the balancer itself counts them: an attempt ends for it when the client gets an answer
or gives up). Within a zone each tier is one FIFO queue in front of all its workers, so
there is no per-worker choice to make there. It learns
of a zone's loss only through health checks (``failure_threshold`` failed probes at
``interval``), so detection takes real time, during which attempts routed to the lost
zone fail (or hang, for a black-holed zone). With no healthy zone it fails open. The
probes' phase is drawn once per run (stream ``gateway.health_check.phase``): a real
balancer's probes are not aligned with the moment a zone fails, so detection takes between
``(failure_threshold - 1) × interval`` and ``failure_threshold × interval``. With probes
at whole multiples of the interval, a fault at 2m was always detected in exactly 10 s.

Admission enforces per-user concurrency caps from the policy table (SOP-101).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generator

from labcore.scenario import Gateway as GatewaySpec

from ..kernel import Recorder, Station, Streams
from .engine import Engine
from .request import CAPPED, OVERLOAD, UNAVAILABLE, Attempt

if TYPE_CHECKING:
    import simpy

    from ..kernel.environment import Environment
    from .client import Client
    from .zone import Zone

__all__ = ["Gateway"]


class Gateway:
    """Routes attempts to zones and admits them; ``forward`` hands them to the engine."""

    def __init__(self, env: "Environment", spec: GatewaySpec, zones: list["Zone"],
                 client: "Client", tenants: list[str], streams: Streams,
                 recorder: Recorder, pinned: bool = False) -> None:
        self.env, self.spec, self.zones, self.client = env, spec, zones, client
        self.recorder = recorder
        self.tenants = tenants
        self.rng = streams.get("gateway.routing")
        self._uniform: Callable[[], float] = self.rng.random  # bound once: a draw an attempt
        #: The entry for attempts (the client's ``enter``), chosen once here by the
        #: routing policy: uniformly at random by default.
        self.accept: Callable[[Attempt], None] = self._accept_random
        if spec.routing != "random":  # opt-in policies draw from streams of their own
            self._policy_rng = streams.get(f"gateway.routing.{spec.routing}")
            self.outstanding = [0] * len(zones)
            self._next = -1  # round robin: the last zone picked (an index into routable)
            self._pick = getattr(self, f"_pick_{spec.routing}")
            self.accept = self._accept_balanced
        if pinned:  # zone-targeted surges: see _accept_pinned
            self._unpinned = self.accept
            self.accept = self._accept_pinned
        self.healthy = [True] * len(zones)
        self.routable = list(range(len(zones)))
        self._width = float(len(zones))  # len(routable), a float: the draw's product is native
        self.ejected: set[int] = set()  # zones ejected by outlier detection (issue 14)
        self._fails = [0] * len(zones)
        self._passes = [0] * len(zones)
        #: The next hop after admission (the engine's ``submit``): set by the system's
        #: wiring, then only through :meth:`set_forward` (a canary stands in front of it).
        self.forward: Callable[[Attempt], None] = lambda attempt: None
        self._engine: Engine | None = None  # while ``forward`` is its submit: called directly
        # Policy table: tenant → (cap for every user or None, {user: cap}); in-flight counts.
        self.caps: dict[int, tuple[int | None, dict[int, int]]] = {}
        self.inflight: dict[tuple[int, int], int] = {}
        for cap in spec.user_caps:
            self.set_cap(cap.tenant, cap.user, cap.max_concurrency)
        self.capped = self.unhealthy_marks = 0
        recorder.add_counters("gateway", self, ("capped", "unhealthy_marks"))
        self.stations: list[Station] = []
        self.factor = 1.0  # latency injection multiplies the service time
        if spec.workers_per_zone > 0:
            service = spec.service_time.sampler(streams.numpy("gateway.service"))

            def serve(attempt: Attempt) -> float:
                return service() * self.factor

            for zone in zones:
                station = Station(env, f"{zone.name}.gateway", spec.workers_per_zone, serve,
                                  self._served)
                zone.add_station(station)
                self.stations.append(station)
        self._probe_phase = streams.get("gateway.health_check.phase").random()
        env.process(self._health_checks())

    # -- narrow methods for mitigations -------------------------------------------------

    def set_cap(self, tenant: str, user: str, max_concurrency: int | None) -> None:
        """Apply (or with ``None`` remove) a per-user concurrency cap; ``user="*"`` = all."""
        index = self.tenants.index(tenant)
        every, users = self.caps.get(index, (None, {}))
        if user == "*":
            every = max_concurrency
        elif max_concurrency is None:
            users.pop(int(user.lstrip("u")) - 1, None)
        else:
            users[int(user.lstrip("u")) - 1] = max_concurrency
        if every is None and not users:
            self.caps.pop(index, None)
        else:
            self.caps[index] = (every, users)

    def set_forward(self, forward: Callable[[Attempt], None]) -> Callable[[Attempt], None]:
        """Hand every admitted attempt to ``forward``; returns the hop it replaces."""
        previous, self.forward = self.forward, forward
        owner = getattr(forward, "__self__", None)
        self._engine = owner if isinstance(owner, Engine) and forward == owner.submit else None
        return previous

    # -- data path ----------------------------------------------------------------------

    def _accept_random(self, attempt: Attempt) -> None:
        """Route to a zone uniformly at random (the default policy). The hot path: this
        is :meth:`_route` inlined (the other policies call it)."""
        routable = self.routable
        z = routable[int(self._uniform() * self._width)]
        attempt.zone = z
        zone = self.zones[z]
        if not zone.up:
            if not zone.blackhole:
                self.client.finish(attempt, UNAVAILABLE)
            return  # a black hole: the client's timeout will end it
        request = attempt.request
        if self.caps and request.tenant in self.caps and not self._admit(attempt):
            self.capped += 1
            self.client.finish(attempt, CAPPED)
            return
        if self.stations:
            if not self.stations[z].submit(attempt):
                self.client.finish(attempt, OVERLOAD)
        else:  # _forward, inlined
            engine = self._engine
            if engine is not None:
                engine.submit(attempt)
            else:
                self.forward(attempt)

    def _accept_pinned(self, attempt: Attempt) -> None:
        """Zone-targeted surges (``pinned``, a scenario with one only): an attempt of a
        request pinned to a zone (``request.pin``, its retries too) goes there while the
        zone is routable, else as any other."""
        z = attempt.request.pin
        if z < 0 or z not in self.routable:
            self._unpinned(attempt)
            return
        if self.spec.routing != "random":  # the balancer counts it as outstanding there
            self.outstanding[z] += 1
            attempt.slot |= 2
        self._route(attempt, z)

    def _accept_balanced(self, attempt: Attempt) -> None:
        z = self._pick(self.routable)
        self.outstanding[z] += 1
        attempt.slot |= 2
        self._route(attempt, z)

    def _pick_round_robin(self, routable: list[int]) -> int:
        self._next = (self._next + 1) % len(routable)
        return routable[self._next]

    def _pick_least_outstanding(self, routable: list[int]) -> int:
        load = self.outstanding
        fewest = min(load[z] for z in routable)
        ties = [z for z in routable if load[z] == fewest]
        return ties[0] if len(ties) == 1 else ties[int(self._policy_rng.random() * len(ties))]

    def _pick_power_of_two(self, routable: list[int]) -> int:
        if len(routable) == 1:
            return routable[0]
        a, b = self._policy_rng.sample(routable, 2)
        return a if self.outstanding[a] <= self.outstanding[b] else b

    def _route(self, attempt: Attempt, z: int) -> None:
        attempt.zone = z
        zone = self.zones[z]
        if not zone.up:
            if not zone.blackhole:
                self.client.finish(attempt, UNAVAILABLE)
            return  # a black hole: the client's timeout will end it
        request = attempt.request
        if self.caps and request.tenant in self.caps and not self._admit(attempt):
            self.capped += 1
            self.client.finish(attempt, CAPPED)
            return
        if self.stations:
            if not self.stations[z].submit(attempt):
                self.client.finish(attempt, OVERLOAD)
        else:
            self._forward(attempt)

    def _forward(self, attempt: Attempt) -> None:
        """Hand ``attempt`` on: to the engine directly while ``forward`` is its own."""
        engine = self._engine
        if engine is not None:
            engine.submit(attempt)
        else:
            self.forward(attempt)

    def _served(self, attempt: Attempt) -> None:
        if attempt.alive:
            self._forward(attempt)
        return None

    def _admit(self, attempt: Attempt) -> bool:
        request = attempt.request
        every, users = self.caps[request.tenant]
        cap = users.get(request.user, every)
        if cap is None:
            return True
        key = (request.tenant, request.user)
        used = self.inflight.get(key, 0)
        if used >= cap:
            return False
        self.inflight[key] = used + 1
        attempt.slot |= 1
        return True

    def release(self, attempt: Attempt) -> None:
        """An attempt that held a concurrency slot (or was counted as outstanding in its
        zone) ended: free the slot (and the count)."""
        if attempt.slot & 1:
            self.inflight[(attempt.request.tenant, attempt.request.user)] -= 1
        if attempt.slot & 2:
            self.outstanding[attempt.zone] -= 1
        attempt.slot = 0

    # -- health checks ------------------------------------------------------------------

    def _health_checks(self) -> Generator["simpy.Event", Any, None]:
        check = self.spec.health_check
        # the first probe at (1 - phase) × interval: in (0, interval], then every interval
        yield self.env.timeout((1.0 - self._probe_phase) * check.interval)
        while True:
            for z, zone in enumerate(self.zones):
                if zone.up:
                    self._passes[z] += 1
                    self._fails[z] = 0
                else:
                    self._fails[z] += 1
                    self._passes[z] = 0
                if self.healthy[z] and self._fails[z] >= check.failure_threshold:
                    self.healthy[z] = False
                    self.unhealthy_marks += 1
                elif not self.healthy[z] and self._passes[z] >= check.success_threshold:
                    self.healthy[z] = True
            self.update_routable()
            yield self.env.timeout(check.interval)

    def update_routable(self) -> None:
        """Healthy zones not ejected by outlier detection; fail open to every zone if none
        is healthy, and ignore the ejections if they would leave none."""
        healthy = [z for z, ok in enumerate(self.healthy) if ok]
        routable = healthy or list(range(len(self.zones)))  # fail open
        if self.ejected:
            routable = [z for z in routable if z not in self.ejected] or routable
        self.routable = routable
        self._width = float(len(routable))
