"""Target-tracking autoscaling of the engine and connector pools, per zone (issue 14).

One process per autoscaled pool samples each zone's station once a second and, every
``interval``, sets the zone's desired size to ``ceil(workers × metric / target)``
within its bounds (see :class:`labcore.scenario.Autoscaling`). New workers serve after a
drawn start-up delay (each its own draw, from the stream ``autoscaling.<tier>``);
removed workers go at once, finishing the job in hand. A zone that is down is left
alone (its capacity returns to its configured size when it recovers).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Generator

from labcore.scenario import Autoscaling

from ..kernel import Station, Streams

if TYPE_CHECKING:
    import simpy

    from ..kernel.environment import Environment
    from .zone import Zone

__all__ = ["Autoscaler", "SAMPLE_EVERY"]

SAMPLE_EVERY = 1.0  # seconds between samples of the tracked metric


class Autoscaler:
    """Scales one tier's stations (one per zone) to track the target."""

    def __init__(self, env: "Environment", spec: Autoscaling, tier: str,
                 stations: list[Station], zones: list["Zone"], streams: Streams) -> None:
        self.env, self.spec, self.tier = env, spec, tier
        self.stations, self.zones = stations, zones
        self.delay = spec.scale_out_delay.sampler(streams.numpy(f"autoscaling.{tier}"))
        n = len(stations)
        self.starting = [0] * n  # workers launched, not yet serving
        self.last_action = [-math.inf] * n
        self.samples: list[list[float]] = [[] for _ in range(n)]
        #: (time, zone, workers serving, workers starting) after every decision that acts.
        self.log: list[tuple[float, int, int, int]] = []
        env.process(self._run())

    def _metric(self, station: Station) -> float:
        if station.capacity == 0:
            return 0.0
        if self.spec.metric == "utilization":
            return min(station.busy, station.capacity) / station.capacity
        return (station.busy + station.queued()) / station.capacity

    def _run(self) -> Generator["simpy.Event", Any, None]:
        per_decision = max(1, round(self.spec.interval / SAMPLE_EVERY))
        tick = 0
        while True:
            yield self.env.timeout(SAMPLE_EVERY)
            for z, station in enumerate(self.stations):
                self.samples[z].append(self._metric(station))
            tick += 1
            if tick % per_decision == 0:
                for z in range(len(self.stations)):
                    self._decide(z)

    def desired(self, z: int, metric: float) -> int:
        spec = self.spec
        current = self.stations[z].capacity + self.starting[z]
        want = math.ceil(current * metric / spec.target - 1e-9)
        return max(spec.min_per_zone, min(spec.max_per_zone, want))

    def _decide(self, z: int) -> None:
        samples, self.samples[z] = self.samples[z], []
        if not self.zones[z].up or not samples:
            return
        station, now = self.stations[z], self.env.now
        want = self.desired(z, sum(samples) / len(samples))
        current = station.capacity + self.starting[z]
        if want > current:
            for _ in range(want - current):
                self.starting[z] += 1
                self.env.process(self._start_worker(z))
        elif (want < current and self.starting[z] == 0
              and now - self.last_action[z] >= self.spec.scale_in_cooldown):
            station.resize(want)
        else:
            return
        self.last_action[z] = now
        self.log.append((now, z, station.capacity, self.starting[z]))

    def _start_worker(self, z: int) -> Generator["simpy.Event", Any, None]:
        yield self.env.timeout(self.delay())
        self.starting[z] -= 1
        if self.zones[z].up:
            station = self.stations[z]
            station.resize(station.capacity + 1)
