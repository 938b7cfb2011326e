"""Metrics: from a run's per-window aggregates to named numbers and a time series.

Every metric is in seconds, fractions, counts or per-second rates, computed over the
measured windows (those starting at or after ``run.warmup``):

``latency_p50``/``latency_p95``/``latency_p99``
    End-to-end latency percentiles of client requests, from the first attempt to the
    final outcome (retries included); failed requests count with the time they took
    (a timed-out request with the timeout). From 2% log bins: within ±1%.
``latency_mean``
    Exact mean of the same latencies.
``error_rate`` / ``availability``
    Fraction of client requests whose final outcome was an error / a success.
``throughput``
    Successful requests per second. ``request_rate``: requests per second.
``errors.<cause>``
    Fraction of requests that ended with that cause (timeout, rate_limited,
    unauthorized, unavailable, overload, provider_error, capped).
``retry_amplification``
    Attempts per request (1.0 without retries).
``slo_window_compliance``
    Fraction of windows meeting the SLO (error rate and P95 both within it).
``rto_seconds``
    Recovery time of the first fault: from its start to the start of the first window
    from which every window meets the SLO for ``slo.sustain`` without a break. It is
    window-granular (one ``run.window``), 0 if no window missed the SLO, and ``None``
    (JSON null) if the run ended before such a stretch: not recovered.
``rpo_seconds``
    Metadata lost when a zone holding the PostgreSQL primary was lost: the replication
    lag at that moment (the worst loss if several). ``None`` if unbounded.
``<tier>.utilization`` / ``<tier>.queue_wait_mean`` / ``<tier>.wait_probability`` /
``<tier>.throughput`` / ``<tier>.rejected``
    For tier ``gateway``, ``engine``, ``connector``: busy server-time over available
    server-time, mean wait in queue over jobs started, fraction of jobs that waited,
    jobs started per second, jobs refused by a full queue.
``cache.hit_ratio``, ``connector.calls``, ``connector.rate_limited`` (provider 429s),
``connector.unauthorized`` (provider 401s), ``connector.timeouts``, ``client.retries``...
    Counts over the measured windows (``cache.hit_ratio`` a fraction).
``tenant.<name>.error_rate`` / ``.latency_p95`` / ``.requests`` / ``.rate_limited``
    The same per tenant: what identifies a noisy tenant and its victims.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal

import numpy as np
import pandas as pd

from .kernel.recorder import OUTCOMES, TIER_FIELDS, bin_value
from .run import RunResult

__all__ = [
    "Estimate",
    "Recovery",
    "Scope",
    "aggregate",
    "compute_metrics",
    "percentile",
    "recovery",
    "window_table",
]

Scope = Literal["run", "before_fault", "outside_recovery", "after_recovery"]
_F = {name: i for i, name in enumerate(TIER_FIELDS)}


def percentile(hist: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0–1) of a latency histogram over bins; NaN if empty."""
    total = hist.sum()
    if total == 0:
        return math.nan
    index = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    return float(bin_value(index))


class Recovery:
    """When the first fault started, and when (if ever) the SLO held again for good."""

    def __init__(self, fault_start: float | None, recovered_at: float | None) -> None:
        self.fault_start, self.recovered_at = fault_start, recovered_at

    @property
    def rto(self) -> float | None:
        if self.fault_start is None or self.recovered_at is None:
            return None
        return max(0.0, self.recovered_at - self.fault_start)


def _window_slo(result: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window: error rate, P95, and whether the SLO held."""
    a, slo = result.arrays, result.scenario.slo
    outcomes = a["outcomes"].sum(axis=1)
    total = outcomes.sum(axis=1)
    errors = total - outcomes[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(total > 0, errors / np.maximum(total, 1), np.nan)
    hist = a["hist"].sum(axis=1)
    p95 = np.array([percentile(h, 0.95) for h in hist])
    meets = (total > 0) & (error_rate <= slo.error_rate) & (p95 <= slo.latency_p95)
    return error_rate, p95, meets


def recovery(result: RunResult) -> Recovery:
    """Find the RTO of the first fault (see the module docstring)."""
    if not result.marks:
        return Recovery(None, None)
    fault = min(mark.start for mark in result.marks)
    start = result.arrays["start"]
    window = result.scenario.run.window
    _, _, meets = _window_slo(result)
    need = max(1, math.ceil(result.scenario.slo.sustain / window - 1e-9))
    first = int(np.searchsorted(start + window, fault, side="right"))  # window holding fault
    for i in range(first, len(start) - need + 1):
        if meets[i : i + need].all():
            return Recovery(fault, max(float(start[i]), fault))
    return Recovery(fault, None)


def _scope_mask(result: RunResult, scope: Scope, rec: Recovery) -> np.ndarray:
    start = result.arrays["start"]
    end = start + result.scenario.run.window
    measured = start >= result.scenario.run.warmup - 1e-9
    if scope == "run" or rec.fault_start is None:
        return measured
    before = end <= rec.fault_start + 1e-9
    if scope == "before_fault":
        return measured & before
    after = start >= rec.recovered_at - 1e-9 if rec.recovered_at is not None else start > np.inf
    if scope == "after_recovery":
        return measured & after
    return measured & (before | after)


def compute_metrics(result: RunResult, scope: Scope = "run") -> dict[str, float | None]:
    """Every metric of one run over the windows of ``scope``."""
    a = result.arrays
    rec = recovery(result)
    mask = _scope_mask(result, scope, rec)
    seconds = float(mask.sum()) * result.scenario.run.window
    metrics: dict[str, float | None] = {}
    _request_metrics(metrics, "", a["hist"][mask].sum(axis=(0, 1)),
                     a["outcomes"][mask].sum(axis=(0, 1)), a["latency_sum"][mask].sum(), seconds)
    counters = dict(zip(a["counter_names"], a["counters"][mask].sum(axis=0).tolist()))
    _counter_metrics(metrics, counters, result.tenants)
    _tier_metrics(metrics, a["tier_names"], a["tiers"][mask].sum(axis=0), seconds)
    for t, name in enumerate(result.tenants):
        _request_metrics(metrics, f"tenant.{name}.", a["hist"][mask, t].sum(axis=0),
                         a["outcomes"][mask, t].sum(axis=0), a["latency_sum"][mask, t].sum(),
                         seconds)
        metrics[f"tenant.{name}.rate_limited"] = float(
            counters.get(f"connector.rate_limited[{name}]", 0)
        )
    _, _, meets = _window_slo(result)
    metrics["slo_window_compliance"] = float(meets[mask].mean()) if mask.any() else math.nan
    if rec.fault_start is not None:
        metrics["rto_seconds"] = rec.rto
    if result.rpo_losses:
        worst = max(loss for _, loss in result.rpo_losses)
        metrics["rpo_seconds"] = None if math.isinf(worst) else worst
    return metrics


def _request_metrics(out: dict, prefix: str, hist: np.ndarray, outcomes: np.ndarray,
                     latency_sum: float, seconds: float) -> None:
    total = int(outcomes.sum())
    ok = int(outcomes[0])
    out[f"{prefix}requests"] = float(total)
    out[f"{prefix}latency_p50"] = percentile(hist, 0.50)
    out[f"{prefix}latency_p95"] = percentile(hist, 0.95)
    out[f"{prefix}latency_p99"] = percentile(hist, 0.99)
    out[f"{prefix}latency_mean"] = latency_sum / total if total else math.nan
    out[f"{prefix}error_rate"] = (total - ok) / total if total else math.nan
    if prefix:
        return
    out["availability"] = ok / total if total else math.nan
    out["throughput"] = ok / seconds if seconds else math.nan
    out["request_rate"] = total / seconds if seconds else math.nan
    for i, cause in enumerate(OUTCOMES[1:], start=1):
        out[f"errors.{cause}"] = int(outcomes[i]) / total if total else math.nan


def _counter_metrics(out: dict, counters: dict[str, int], tenants: Iterable[str]) -> None:
    hits, misses = counters.get("cache.hits", 0), counters.get("cache.misses", 0)
    out["cache.hit_ratio"] = hits / (hits + misses) if hits + misses else math.nan
    requests = counters.get("client.requests", 0)
    attempts = counters.get("client.attempts", 0)
    out["retry_amplification"] = attempts / requests if requests else math.nan
    for name in ("client.retries", "client.retries_denied", "client.wasted", "engine.wasted",
                 "connector.calls", "connector.timeouts", "gateway.capped"):
        out[name] = float(counters.get(name, 0))
    for name in ("rate_limited", "unauthorized"):
        out[f"connector.{name}"] = float(
            sum(counters.get(f"connector.{name}[{t}]", 0) for t in tenants)
        )


def _tier_metrics(out: dict, names: list[str], tiers: np.ndarray, seconds: float) -> None:
    for name, row in zip(names, tiers):
        started, capacity = row[_F["started"]], row[_F["capacity_area"]]
        if capacity == 0 and started == 0:
            continue  # the tier is bypassed in this scenario
        out[f"{name}.utilization"] = row[_F["busy_area"]] / capacity if capacity else math.nan
        out[f"{name}.queue_wait_mean"] = row[_F["wait_sum"]] / started if started else math.nan
        out[f"{name}.wait_probability"] = row[_F["waited"]] / started if started else math.nan
        out[f"{name}.throughput"] = started / seconds if seconds else math.nan
        out[f"{name}.rejected"] = float(row[_F["rejected"]])


def window_table(result: RunResult, replication: int = 0) -> pd.DataFrame:
    """One row per window: the time series behind the plots (``timeseries.csv``)."""
    a, window = result.arrays, result.scenario.run.window
    outcomes = a["outcomes"].sum(axis=1)
    total = outcomes.sum(axis=1)
    error_rate, p95, meets = _window_slo(result)
    hist = a["hist"].sum(axis=1)
    frame: dict[str, Any] = {
        "replication": replication,
        "time": a["start"],
        "measured": a["start"] >= result.scenario.run.warmup - 1e-9,
        "requests": total,
        "throughput": outcomes[:, 0] / window,
        "error_rate": error_rate,
        "latency_p50": [percentile(h, 0.50) for h in hist],
        "latency_p95": p95,
        "latency_p99": [percentile(h, 0.99) for h in hist],
        "meets_slo": meets,
    }
    for i, cause in enumerate(OUTCOMES[1:], start=1):
        frame[f"errors.{cause}"] = outcomes[:, i]
    counters = pd.DataFrame(a["counters"], columns=a["counter_names"])
    hits = counters.get("cache.hits", pd.Series(0, index=counters.index))
    misses = counters.get("cache.misses", pd.Series(0, index=counters.index))
    frame["cache.hit_ratio"] = (hits / (hits + misses).where(hits + misses > 0)).to_numpy()
    for name in ("rate_limited", "unauthorized"):
        cols = [c for c in counters.columns if c.startswith(f"connector.{name}[")]
        frame[f"connector.{name}"] = counters[cols].sum(axis=1).to_numpy() if cols else 0
    for col in ("client.retries", "connector.calls"):
        frame[col] = counters[col].to_numpy() if col in counters else 0
    for t, name in enumerate(a["tier_names"]):
        row = a["tiers"][:, t, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"{name}.utilization"] = row[:, _F["busy_area"]] / row[:, _F["capacity_area"]]
            frame[f"{name}.queue_wait_mean"] = row[:, _F["wait_sum"]] / row[:, _F["started"]]
    for t, name in enumerate(result.tenants):
        tenant_total = a["outcomes"][:, t].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"tenant.{name}.error_rate"] = (
                (tenant_total - a["outcomes"][:, t, 0]) / tenant_total
            )
    return pd.DataFrame(frame)


class Estimate:
    """A metric across replications: mean and 95% Student-t confidence interval.

    With one replication (or identical values) the interval collapses to the mean, or is
    ``None`` with one replication. If any replication has no value (an RTO never
    reached, an unbounded RPO), the estimate has none either: a mean over the runs that
    recovered would flatter the system.
    """

    __slots__ = ("mean", "ci_low", "ci_high", "n")

    def __init__(self, values: list[float | None]) -> None:
        self.n = len(values)
        clean = [v for v in values if v is not None and not math.isnan(v)]
        if len(clean) < len(values) or not clean:
            self.mean = self.ci_low = self.ci_high = None
            return
        arr = np.asarray(clean, dtype=float)
        self.mean: float | None = float(arr.mean())
        if len(arr) < 2:
            self.ci_low = self.ci_high = None
            return
        from scipy.stats import t as student_t

        half = float(student_t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
        self.ci_low: float | None = self.mean - half
        self.ci_high: float | None = self.mean + half

    def as_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high}

    def __repr__(self) -> str:
        return f"Estimate(mean={self.mean!r}, ci=({self.ci_low!r}, {self.ci_high!r}), n={self.n})"


def aggregate(runs: list[dict[str, float | None]]) -> dict[str, Estimate]:
    """Per metric, the :class:`Estimate` over replications (metrics every run has)."""
    names = [name for name in runs[0] if all(name in run for run in runs)]
    return {name: Estimate([run[name] for run in runs]) for name in names}
