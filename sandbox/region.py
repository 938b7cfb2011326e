"""A regional failover acted out on the stand-in: the plan (pure) and the gateway's gate.

The simulator (``sim.model.region``) models a region loss as: every zone fails at once; the
metadata primary is lost (RPO = the replica's lag); then *detection*, *decision* and
*spin-up* delays drawn from the scenario's ``failover:`` block; then the secondary region
comes up with a cold cache, and clients move over during one DNS TTL (a request reaches the
new region with probability ``elapsed / ttl``; until then the old region refuses fast, or
never answers with ``blackhole``). The stand-in acts out the same steps with real processes
(:mod:`sandbox.admin.region`): this module holds the parts that are plain logic.

- :func:`failover_section` maps the scenario onto the ``failover`` section of the stand-in's
  configuration (``DIR/standin.json``): the three delay distributions as the scenario gives
  them, the DNS TTL, the missing replicated dependencies, ``blackhole``, the seed and how
  metadata is copied (a snapshot schedule: :mod:`sandbox.admin.snapshots`).
- :func:`draw_timeline` draws the delays, seeded like the simulator's streams of the same
  names. The delays are *inputs* (an alarm, a human, infrastructure as code), not something
  the stand-in can measure: the ``standin`` profile pins them to constants so the measured
  RTO is those constants plus the stand-in's own dynamics.
- :class:`RegionGate` is what the gateway's clients see: ``up``, ``down`` (the region is
  gone: refused fast, or hung with blackhole) or ``shifting`` (DNS: admitted with
  probability ``elapsed / ttl``, else as ``down``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import TypeAdapter

from labcore.distributions import Distribution
from labcore.scenario import DEPENDENCIES, RegionLoss, Scenario

__all__ = ["STEPS", "RegionGate", "draw_timeline", "failover_section", "stream_seed"]

#: The timeline's delays, in order (the simulator's ``failover.<step>`` streams).
STEPS = ("detection", "decision", "spinup")
_DIST: TypeAdapter[Any] = TypeAdapter(Distribution)
Phase = Literal["up", "down", "shifting"]


def stream_seed(seed: int, *name: str) -> int:
    """A seed per named stream: ``sandbox.standin.derive_seed`` (the simulator's rule)."""
    from sandbox.standin import derive_seed

    return derive_seed(seed, *name)


def failover_section(scenario: Scenario) -> dict[str, Any] | None:
    """The ``failover`` section of the stand-in's configuration (None without one)."""
    spec = scenario.failover
    if spec is None:
        return None
    losses = [f for f in scenario.faults if isinstance(f, RegionLoss)]
    return {
        **{step: getattr(spec, step).model_dump(by_alias=True, mode="json") for step in STEPS},
        "dns_ttl_seconds": spec.dns_ttl,
        "missing": [d for d in DEPENDENCIES if d not in spec.replicated],
        "blackhole": bool(losses and losses[0].blackhole),
        "seed": scenario.run.seed,
        "metadata": _metadata(spec),
    }


def _metadata(spec: Any) -> dict[str, Any]:
    """How metadata reaches the secondary: ``snapshots`` when the admin runs a snapshot
    schedule (:mod:`sandbox.admin.snapshots`); otherwise the streaming replica is promoted."""
    meta = spec.metadata
    return {"mode": meta.mode,
            "interval_seconds": None if meta.mode == "async" else meta.interval,
            "snapshots": meta.mode == "snapshot" and "metadata" in spec.replicated}


def _distribution(data: dict[str, Any]) -> Any:
    # The configuration carries seconds as numbers; the schema wants units on durations.
    return _DIST.validate_python({k: f"{v!r}s" if isinstance(v, (int, float))
                                  and not isinstance(v, bool) else v for k, v in data.items()})


def draw_timeline(section: dict[str, Any]) -> dict[str, float]:
    """``{step: seconds}`` for detection, decision and spin-up: one draw each from the
    section's distributions (a constant is itself), seeded per step."""
    out = {}
    for step in STEPS:
        dist = _distribution(section[step])
        # The simulator's numpy streams add "numpy" to the name (sim.kernel.streams): the
        # same seed, so the stand-in's draws are the simulator's first replication's.
        rng = np.random.default_rng(stream_seed(int(section["seed"]), "numpy",
                                                f"failover.{step}"))
        out[step] = max(0.0, float(dist.sampler(rng)()))
    return out


@dataclass
class RegionGate:
    """The gateway's view of the region: which requests reach the data plane.

    ``admit()`` answers ``"pass"`` (forward as usual), ``"refuse"`` (the old region refuses
    fast: 503) or ``"hang"`` (blackhole: no answer until the client's timeout)."""

    phase: Phase = "up"
    blackhole: bool = False
    ttl: float = 0.0
    started: float = 0.0  # monotonic start of the DNS shift
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    clock: Callable[[], float] = time.monotonic

    def set(self, phase: Phase, blackhole: bool = False, ttl: float = 0.0,
            seed: int = 0) -> dict[str, Any]:
        self.phase, self.blackhole, self.ttl = phase, blackhole, max(0.0, ttl)
        self.started = self.clock()
        self.rng = random.Random(stream_seed(seed, "failover.dns"))
        if phase == "shifting" and self.ttl == 0.0:
            self.phase = "up"  # no TTL: every client moves at once
        return self.json()

    def share(self) -> float:
        """The share of clients that resolve the new region now."""
        if self.phase == "up":
            return 1.0
        if self.phase == "down":
            return 0.0
        elapsed = self.clock() - self.started
        if elapsed >= self.ttl:
            self.phase = "up"  # the shift is over: everyone has the new answer
            return 1.0
        return elapsed / self.ttl

    def admit(self) -> Literal["pass", "refuse", "hang"]:
        share = self.share()
        if share >= 1.0 or (share > 0.0 and self.rng.random() < share):
            return "pass"
        return "hang" if self.blackhole else "refuse"

    def json(self) -> dict[str, Any]:
        return {"phase": self.phase, "blackhole": self.blackhole, "dns_ttl_seconds": self.ttl,
                "share": round(self.share(), 4)}
