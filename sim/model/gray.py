"""Gray failures and the balancer's passive outlier detection (issue 14).

A gray failure degrades one zone's tier without taking it down: up/down health probes
still pass, so only a detector that watches the attempts themselves can take the zone
out of routing. :func:`gray_failure` is the fault (a process, like the others in
:mod:`sim.model.faults`); :class:`OutlierDetector` is Envoy-style outlier ejection by
consecutive failures, failure percentage or success-rate deviation.

The fault acts by wrapping the zone's station's ``serve`` and ``after`` for its
duration (through the station's setters): the first service phase of every job there
is ``latency_factor`` times longer, and a share ``error_rate`` of them fail
``unavailable`` when that phase ends (the worker is released; for connectors, after the
provider call was made). Only ``capacity`` of the workers keep taking work; jobs in
service finish.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator

from labcore.scenario import GrayFailure, OutlierDetection

from ..kernel import Recorder, Station
from .request import OVERLOAD, TIMEOUT, UNAVAILABLE, Attempt

if TYPE_CHECKING:
    import simpy

    from ..kernel.environment import Environment
    from .gateway import Gateway
    from .system import System

__all__ = ["OutlierDetector", "gray_failure"]

#: Outcomes the balancer sees as the zone's failure (5xx, refused, gateway timeout).
ZONE_FAILURES = frozenset({UNAVAILABLE, OVERLOAD, TIMEOUT})


def _tier(system: "System", fault: GrayFailure) -> tuple[Station, Callable[[Attempt, int], None]]:
    """The zone's station of the tier, and how that tier ends an attempt in error."""
    zone = system.zone_names.index(fault.zone)
    if fault.tier == "engine":
        return system.engine.stations[zone], system.client.finish
    if fault.tier == "connector":  # a read-through policy may stand in front of the client
        return system.connectors.stations[zone], lambda a, o: system.connectors.finish(a, o)
    return system.gateway.stations[zone], system.client.finish


def gray_failure(system: "System", fault: GrayFailure) -> Iterator["simpy.Event"]:
    env = system.env
    yield env.timeout(max(0.0, fault.at - env.now))
    station, finish = _tier(system, fault)
    rng = system.streams.get(f"faults.gray_failure.{fault.zone}.{fault.tier}")
    serve, after, capacity = station.serve, station.after, station.capacity  # to wrap
    doomed: set[Attempt] = set()
    factor, error_rate = fault.latency_factor, fault.error_rate

    def degraded_serve(job: Attempt) -> float:
        if error_rate > 0.0 and rng.random() < error_rate:
            doomed.add(job)
        return serve(job) * factor

    def degraded_after(job: Attempt) -> float | None:
        if job in doomed:
            doomed.discard(job)
            finish(job, UNAVAILABLE)
            return None
        return after(job)

    station.set_serve(degraded_serve)
    station.set_after(degraded_after)
    station.resize(round(capacity * fault.capacity))
    system.mark(fault, f"{fault.zone} {fault.tier} gray: latency x{factor:g}, "
                       f"errors {error_rate:.0%}, capacity {fault.capacity:.0%}")
    if fault.duration is None:
        return
    yield env.timeout(fault.duration)
    station.set_serve(serve)
    station.set_after(after)
    if station.capacity > 0 or system.zones[system.zone_names.index(fault.zone)].up:
        station.resize(capacity)
    system.mark_end(fault)


class OutlierDetector:
    """Watches every attempt's outcome per zone and ejects outlier zones (see
    :class:`labcore.scenario.OutlierDetection` for the rules)."""

    def __init__(self, env: "Environment", spec: OutlierDetection, gateway: "Gateway",
                 recorder: Recorder) -> None:
        self.env, self.spec, self.gateway = env, spec, gateway
        n = len(gateway.zones)
        self.consecutive, self.total, self.failed = [0] * n, [0] * n, [0] * n
        self.times_ejected, self.until = [0] * n, [0.0] * n
        self.limit = max(1, math.floor(spec.max_ejection_percent * n + 1e-9))
        self.ejections = 0
        recorder.add_counters("outlier", self, ("ejections",))
        env.process(self._sweep())

    def observe(self, attempt: Attempt, outcome: int) -> None:
        """The client's observer: an attempt routed to ``attempt.zone`` ended."""
        z, spec = attempt.zone, self.spec
        if z < 0:
            return
        self.total[z] += 1
        slow = spec.slow_threshold
        if outcome not in ZONE_FAILURES and (slow is None or self.env.now - attempt.start <= slow):
            self.consecutive[z] = 0
            return
        self.failed[z] += 1
        self.consecutive[z] += 1
        limit = spec.consecutive_failures
        if limit is not None and self.consecutive[z] >= limit:
            self._eject(z)

    def _eject(self, z: int) -> None:
        ejected = self.gateway.ejected
        if z in ejected or len(ejected) >= self.limit:
            return
        self.times_ejected[z] += 1
        spec = self.spec
        self.until[z] = self.env.now + min(spec.base_ejection_time * self.times_ejected[z],
                                           spec.max_ejection_time)
        self.ejections += 1
        self.consecutive[z] = 0
        ejected.add(z)
        self.gateway.update_routable()

    def _sweep(self) -> Generator["simpy.Event", Any, None]:
        while True:
            yield self.env.timeout(self.spec.interval)
            returned = [z for z in self.gateway.ejected if self.until[z] <= self.env.now]
            for z in returned:
                self.gateway.ejected.discard(z)
            if returned:
                self.gateway.update_routable()
            self._judge_rates()
            n = len(self.total)
            self.total, self.failed = [0] * n, [0] * n

    def _judge_rates(self) -> None:
        spec, ejected = self.spec, self.gateway.ejected
        busy = [z for z, total in enumerate(self.total)
                if total >= spec.request_volume and z not in ejected]
        rates = {z: 1.0 - self.failed[z] / self.total[z] for z in busy}
        if spec.failure_percentage is not None:
            for z in busy:
                if 1.0 - rates[z] >= spec.failure_percentage:
                    self._eject(z)
        if spec.success_rate_stdev_factor is not None and len(busy) >= spec.minimum_hosts:
            values = list(rates.values())
            spread = spec.success_rate_stdev_factor * statistics.pstdev(values)
            floor = statistics.fmean(values) - spread
            for z in busy:
                if rates[z] < floor:
                    self._eject(z)
