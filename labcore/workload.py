"""The workload mix every runner draws from: rates over time, targets, Zipf keys, SQL.

One implementation for the simulator (``sim.model.workload``), the Locust load
(``loadtests.shapes``, ``loadtests.queries``), the chaos extension's background load and
the stand-in's catalogue (``sandbox.catalog``):

- :class:`RateFunction`: a tenant's rate at time ``t``, ``rate × workload.scale ×
  profile(t) × surge(t)``, with the piecewise-constant bounds thinning draws against;
- :func:`mix_cdf` and :func:`zipf_cdf`: the cumulative shares of a tenant's
  ``connector.object`` targets and the Zipf popularity of cache-key ranks, and
  :func:`pick` which inverts either for a uniform draw;
- :data:`CATALOG_ROWS` and :func:`key_sql`: the rows each object of the stand-in serves,
  and the one distinct query of each key rank (distinct ranks cache apart).
"""

from __future__ import annotations

import bisect
import math
from itertools import accumulate
from typing import Iterable, Sequence

from .scenario import Diurnal, Scenario, TrafficSurge

__all__ = ["CATALOG_ROWS", "MAX_LIMIT", "RateFunction", "key_sql", "mix_cdf", "pick",
           "zipf_cdf"]

#: What the stand-in's mock providers serve: ``connector.object`` → rows.
CATALOG_ROWS: dict[str, int] = {"crm.accounts": 500, "crm.contacts": 1000,
                                "tickets.tickets": 2000}
#: The largest ``LIMIT`` the stand-in accepts: ranks beyond ``rows × MAX_LIMIT`` cannot
#: be told apart.
MAX_LIMIT = 1000


def mix_cdf(shares: Iterable[float]) -> list[float]:
    """Cumulative shares of a mix, the last forced to exactly 1 (no rounding gap)."""
    cdf = list(accumulate(shares))
    cdf[-1] = 1.0
    return cdf


def pick(cdf: Sequence[float], u: float) -> int:
    """The index a uniform draw ``u`` in [0, 1) selects from a cumulative ``cdf``."""
    return min(bisect.bisect_right(cdf, u), len(cdf) - 1)


def key_sql(target: str, rank: int, rows: int | None = None) -> str:
    """The one query of key rank ``rank`` on ``connector.object`` ``target``."""
    rows = CATALOG_ROWS[target] if rows is None else rows
    return f"SELECT * FROM {target} WHERE id = {rank % rows + 1} LIMIT {rank // rows + 1}"


def zipf_cdf(n: int, s: float) -> list[float]:
    """Cumulative Zipf(s) popularity over ranks 1..n (s = 0 is uniform)."""
    weights = [1.0 / (rank**s) for rank in range(1, n + 1)]
    total = sum(weights)
    cdf = [w / total for w in accumulate(weights)]
    cdf[-1] = 1.0
    return cdf


def _ramped(surge: TrafficSurge, t: float) -> float:
    """The factor of an active ``surge`` at ``t`` (linear ramp from 1 to ``factor``)."""
    ramp = min(1.0, (t - surge.at) / surge.ramp) if surge.ramp > 0 else 1.0
    return 1.0 + (surge.factor - 1.0) * ramp


class RateFunction:
    """A tenant's arrival rate over time and a piecewise-constant upper bound for thinning."""

    def __init__(self, base: float, scenario: Scenario, tenant: str) -> None:
        self.base = base
        self.profile = scenario.workload.profile
        self.surges = [
            f for f in scenario.faults if isinstance(f, TrafficSurge) and f.applies_to(tenant)
        ]
        self.segments = self._segments(scenario.run.duration)

    def profile_scale(self, t: float) -> float:
        profile = self.profile
        if isinstance(profile, Diurnal):
            phase = 2.0 * math.pi * (t - profile.peak_at) / profile.period
            return profile.trough + (1.0 - profile.trough) * (1.0 + math.cos(phase)) / 2.0
        points = profile
        if t <= points[0].at:
            return points[0].scale
        for left, right in zip(points, points[1:]):
            if t < right.at:
                span = right.at - left.at
                return left.scale + (right.scale - left.scale) * (t - left.at) / span
        return points[-1].scale

    def surge_factor(self, t: float) -> float:
        factor = 1.0
        for s in self.surges:
            if s.at <= t < s.at + s.duration:
                factor *= _ramped(s, t)
        return factor

    def zone_shares(self, t: float) -> list[tuple[str, float]]:
        """The zone-targeted surges at ``t``: ``(zone, share)``, the share of the tenant's
        arrivals at ``t`` that are that surge's extra requests. The extra of every
        zone-targeted surge together is the rate above the rate without them; it is split
        between them in proportion to their own extra (``factor - 1``, ramped)."""
        active = [(s.zone, _ramped(s, t)) for s in self.surges
                  if s.zone is not None and s.at <= t < s.at + s.duration]
        if not active:
            return []
        zoned = math.prod(f for _, f in active)
        pinned = 1.0 - 1.0 / zoned  # 1 - (factor without them) / (factor with them)
        extra = sum(f - 1.0 for _, f in active)
        return [(zone, pinned * (f - 1.0) / extra) for zone, f in active] if extra > 0 else []

    def __call__(self, t: float) -> float:
        return self.base * self.profile_scale(t) * self.surge_factor(t)

    def _segments(self, duration: float) -> list[tuple[float, float, float, bool]]:
        """``(start, end, bound, constant)`` covering [0, duration]."""
        cuts = {0.0, duration}
        if not isinstance(self.profile, Diurnal):
            cuts.update(p.at for p in self.profile)
        for s in self.surges:
            cuts.update((s.at, s.at + s.ramp, s.at + s.duration))
        edges = sorted(c for c in cuts if 0.0 <= c <= duration)
        segments = []
        eps = 1e-9
        for start, end in zip(edges, edges[1:]):
            if isinstance(self.profile, Diurnal):
                p_max, flat_p = 1.0, False
            else:
                a, b = self.profile_scale(start), self.profile_scale(end - eps)
                p_max, flat_p = max(a, b), a == b
            sa, sb = self.surge_factor(start), self.surge_factor(end - eps)
            bound = self.base * p_max * max(sa, sb)
            segments.append((start, end, bound, flat_p and sa == sb))
        return segments
