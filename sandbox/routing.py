"""Which engine gets a request: healthy AZs in turn, plus a weighted share to the canary.

Each zone has a blue and (on a stand-in that has them) a green engine; only the active
colour's engines take new attempts (a blue-green cutover switches it: sandbox.cutover).
Both colours are health-checked, so green's health is known before traffic moves to it.

Health checks run every `interval` seconds; `threshold` consecutive failures mark a backend
unhealthy and one success heals it. Requests that find a dead engine before the checker does
are retried elsewhere by the gateway, and also count as failures here. When no AZ looks
healthy the router tries them all anyway ("panic mode", as Envoy does): overloaded health
checks must not turn a slow system into a dead one.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.metrics import CANARY_WEIGHT, ZONE_HEALTHY

__all__ = ["Backend", "Router"]


@dataclass
class Backend:
    name: str
    zone: str
    url: str
    colour: str = "blue"  # blue, green, or canary (not part of a cutover)
    healthy: bool = True
    failures: int = 0
    successes: int = 0

    def observe(self, ok: bool, threshold: int, heal: int = 1) -> None:
        """``threshold`` failures in a row take it out, ``heal`` successes in a row bring
        it back (a scenario's ``failure_threshold`` and ``success_threshold``)."""
        if ok:
            self.failures, self.successes = 0, self.successes + 1
            if self.successes >= heal:
                self.healthy = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= threshold:
                self.healthy = False


@dataclass
class Router:
    engines: list[Backend]  # the active colour's (blue until a cutover)
    canary: Backend | None
    #: The other colour's engines (none: a stand-in without green engines).
    standby: list[Backend] = field(default_factory=list)
    interval: float = 0.5
    probe_timeout: float = 1.0
    threshold: int = 2
    heal: int = 1
    canary_weight: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _turn: itertools.count = field(default_factory=itertools.count)

    def zones(self) -> dict[str, str]:
        return {b.zone: "healthy" if b.healthy else "unhealthy" for b in self.engines}

    def choose(self, exclude: set[str]) -> Backend | None:
        """The canary with probability `canary_weight`, else the next healthy AZ engine."""
        canary = self.canary
        if (canary and canary.healthy and canary.name not in exclude
                and self.canary_weight > 0 and self.rng.random() < self.canary_weight):
            return canary
        pool = [b for b in self.engines if b.healthy and b.name not in exclude]
        if not pool:
            pool = [b for b in self.engines if b.name not in exclude]  # panic mode
        if not pool:
            return None
        return pool[next(self._turn) % len(pool)]

    def switch(self) -> None:
        """The standby colour takes new attempts from now on; the other becomes standby."""
        self.engines, self.standby = self.standby, self.engines

    @property
    def colour(self) -> str:
        return self.engines[0].colour if self.engines else "blue"

    def configure(self, health: dict[str, Any]) -> None:
        """A ``gateway.health_check`` section (``sandbox.sections``): the next probe round
        uses it."""
        self.interval, self.probe_timeout = health["interval_seconds"], health["timeout_seconds"]
        self.threshold, self.heal = health["failure_threshold"], health["success_threshold"]

    def health_settings(self) -> dict[str, Any]:
        return {"interval_seconds": self.interval, "failure_threshold": self.threshold,
                "success_threshold": self.heal, "timeout_seconds": self.probe_timeout}

    def export_gauges(self) -> None:
        """Copy the routing view into gauges; called at scrape time, so never stale."""
        for backend in self.engines:
            ZONE_HEALTHY.labels("gateway", backend.zone).set(1 if backend.healthy else 0)
        CANARY_WEIGHT.labels("gateway").set(self.canary_weight)

    def failed(self, backend: Backend) -> None:
        # A refused connection is a strong signal: take the AZ out at once.
        backend.observe(False, 1)

    async def check_forever(self, http: httpx.AsyncClient) -> None:
        while True:
            backends = self.engines + self.standby + ([self.canary] if self.canary else [])
            results = await asyncio.gather(*(self._probe(http, b) for b in backends))
            for backend, ok in zip(backends, results):
                backend.observe(ok, self.threshold, self.heal)
            await asyncio.sleep(self.interval)

    async def _probe(self, http: httpx.AsyncClient, backend: Backend) -> bool:
        try:
            resp = await http.get(f"{backend.url}/health", timeout=self.probe_timeout)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200
