"""The SLO judged on the gateway's stats, with the simulator's single check rule.

Thresholds come from the scenario's ``slo`` block; :func:`sim.passes` decides, so a
threshold means the same in the simulator, Locust and here. A window with too few
requests is not judged good (a missing observation never passes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["recovery_time", "slo_failures"]


def slo_failures(stats: dict[str, Any], slo: Any, tenants: Iterable[str] | None = None,
                 min_requests: int = 1) -> list[str]:
    """Why ``stats`` misses the SLO (empty when it meets it), overall or for ``tenants``."""
    from sim import passes

    scopes = ({"all": stats} if tenants is None
              else {t: stats.get("by_tenant", {}).get(t, {}) for t in tenants})
    reasons = []
    for name, s in scopes.items():
        if s.get("requests", 0) < min_requests:
            reasons.append(f"{name}: {s.get('requests', 0)} requests < {min_requests}")
            continue
        if not passes("<=", s.get("error_rate"), slo.error_rate):
            reasons.append(f"{name}: error_rate {s.get('error_rate'):.4f} > {slo.error_rate:g}")
        if not passes("<=", s.get("latency_p95"), slo.latency_p95):
            reasons.append(f"{name}: latency_p95 {s.get('latency_p95')} > {slo.latency_p95:g}s")
    return reasons


def recovery_time(good: list[bool], window: float, sustain: float) -> float | None:
    """RTO from consecutive windows since the fault (``good[i]`` covers ``[iW, (i+1)W)``).

    The start of the first window from which every window meets the SLO for ``sustain``
    (at least one window), the simulator's definition (``labcore.metrics``); ``None`` if the
    windows end before such a stretch.
    """
    need = max(1, math.ceil(sustain / window - 1e-9))
    streak = 0
    for i, ok in enumerate(good):
        streak = streak + 1 if ok else 0
        if streak == need:
            return (i + 1 - need) * window
    return None
