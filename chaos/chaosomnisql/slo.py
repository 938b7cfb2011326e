"""The SLO judged on the gateway's stats, with the simulator's single check rule.

Thresholds come from the scenario's ``slo`` block; :func:`labcore.checks.passes` decides,
so a threshold means the same in the simulator, Locust and here, and the RTO rule is the
simulator's own (:func:`labcore.metrics.sustained_from`). A window with too few requests
is not judged good (a missing observation never passes).

The steady-state hypotheses are gates, not checks: they ask whether the system is in its
normal state from a sample of a few seconds, where one background error in 80 requests
already reads 1.25%, and a P95 over 30 requests is their second slowest. With ``confidence``
they fail only when the sample shows the target is missed at that confidence: the error
rate by a one-sided binomial test on the error count, the P95 by the same test on the count
of requests slower than the target (more than 5 % of them, when the stats carry ``slow``).
The recovery rule and the verdict keep the simulator's point rule per window.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scipy.stats import binom

from labcore.checks import passes
from labcore.metrics import sustain_windows, sustained_from

__all__ = ["DEFAULT_RECOVERY_WAIT", "exceeds_error_budget", "exceeds_latency_target",
           "recovery_time", "rto_target", "slo_failures"]

#: How long recovery is waited for when the scenario has no RTO check.
DEFAULT_RECOVERY_WAIT = 900.0


def exceeds_error_budget(errors: int, requests: int, budget: float,
                         confidence: float | None = None) -> bool:
    """Whether ``errors`` of ``requests`` exceed the error ``budget`` (a share).

    Without ``confidence``, the point rule (``errors / requests > budget``). With it, only
    when an error rate of exactly ``budget`` would give ``errors`` or more with probability
    below ``1 - confidence``.
    """
    if confidence is None:
        return not passes("<=", errors / requests, budget)
    return bool(binom.sf(errors - 1, requests, budget) < 1.0 - confidence)


def exceeds_latency_target(slow: int, requests: int, confidence: float) -> bool:
    """Whether a P95 target is missed, from ``slow`` of ``requests`` slower than it: only
    when a system whose P95 is exactly the target (5 % slower) would give ``slow`` or more
    with probability below ``1 - confidence``."""
    return exceeds_error_budget(slow, requests, 0.05, confidence)


def slo_failures(stats: dict[str, Any], slo: Any, tenants: Iterable[str] | None = None,
                 min_requests: int = 1, confidence: float | None = None) -> list[str]:
    """Why ``stats`` misses the SLO (empty when it meets it), overall or for ``tenants``;
    ``confidence``: judge the error rate by :func:`exceeds_error_budget`'s test, and the P95 by
    :func:`exceeds_latency_target`'s where the stats count ``slow`` requests."""
    scopes = ({"all": stats} if tenants is None
              else {t: stats.get("by_tenant", {}).get(t, {}) for t in tenants})
    reasons = []
    for name, s in scopes.items():
        if s.get("requests", 0) < min_requests:
            reasons.append(f"{name}: {s.get('requests', 0)} requests < {min_requests}")
            continue
        if _error_rate_fails(s, slo.error_rate, confidence):
            reasons.append(f"{name}: error_rate {s.get('error_rate'):.4f} > {slo.error_rate:g}"
                           + ("" if confidence is None else f" at {confidence:.0%} confidence"))
        if _latency_fails(s, slo.latency_p95, confidence):
            reasons.append(f"{name}: latency_p95 {s.get('latency_p95')} > {slo.latency_p95:g}s"
                           + ("" if confidence is None or s.get("slow") is None
                              else f" at {confidence:.0%} confidence ({s['slow']} slower)"))
    return reasons


def _error_rate_fails(s: dict[str, Any], budget: float, confidence: float | None) -> bool:
    if confidence is None or s.get("errors") is None:
        return not passes("<=", s.get("error_rate"), budget)
    return exceeds_error_budget(int(s["errors"]), int(s["requests"]), budget, confidence)


def _latency_fails(s: dict[str, Any], target: float, confidence: float | None) -> bool:
    if confidence is None or s.get("slow") is None or s.get("latency_p95") is None:
        return not passes("<=", s.get("latency_p95"), target)
    return exceeds_latency_target(int(s["slow"]), int(s["requests"]), confidence)


def rto_target(scenario: Any, metric: str | None = None) -> float:
    """How long recovery is waited for: the target of the check on ``metric`` (e.g.
    ``tenants_except.umbrella.rto_seconds``) if the scenario has one, else the largest
    target of its recovery checks (any ``*rto_seconds``), else
    :data:`DEFAULT_RECOVERY_WAIT`. The probe and the wrapper's timeout both use it."""
    checks = [c for c in scenario.checks if c.metric.endswith("rto_seconds")]
    own = [float(c.value) for c in checks if c.metric == metric]
    targets = own or [float(c.value) for c in checks]
    return max(targets) if targets else DEFAULT_RECOVERY_WAIT


def recovery_time(good: list[bool], window: float, sustain: float) -> float | None:
    """RTO from consecutive windows since the fault (``good[i]`` covers ``[iW, (i+1)W)``).

    The start of the first window from which every window meets the SLO for ``sustain``
    (at least one window): the simulator's rule, :func:`labcore.metrics.sustained_from`;
    ``None`` if the windows end before such a stretch.
    """
    index = sustained_from(good, sustain_windows(sustain, window))
    return None if index is None else index * window
