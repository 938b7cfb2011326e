"""The canary analysis: one rule, shared by the simulator and the stand-in.

A release's analysis sees, per window, the attempts each version served (their count,
errors and latencies). :func:`judge_window` gives one window's verdict (the guide's
"error rates increase by >0.5%" and "P95 latency exceeds 1.5 s", optionally a one-sided
Mann-Whitney U test); :class:`CanaryProgress` turns the verdicts into the rollout: the
share of traffic at each step, and the decision (``rolled_back``, ``promoted``, or
``paused`` when an Argo analysis meets an inconclusive window). The simulator's release
(``sim/model/release.py``) and the stand-in's controller (``sandbox/admin/canary.py``)
both feed their windows to these, so the two apply the same thresholds, minimum samples
and counting, read from the scenario's ``release.analysis``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .scenario import Canary

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "CanaryProgress", "Tally", "judge_window",
           "metric_failures"]

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


class Tally:
    """One version's attempts in the current analysis window."""

    __slots__ = ("errors", "latencies", "n")

    def __init__(self, n: int = 0, errors: int = 0,
                 latencies: list[float] | None = None) -> None:
        self.n = n
        self.errors = errors
        self.latencies: list[float] = [] if latencies is None else latencies


def _error_fails(spec: Canary, pc: float, pb: float) -> bool:
    a = spec.analysis
    if a.error_reading == "points":
        return pc - pb > a.error_increase
    return pc > pb * (1.0 + a.error_increase) if pb > 0 else pc > 0


def judge_window(spec: Canary, canary: Tally, baseline: Tally) -> dict[str, Any]:
    """The analysis of one window: its numbers and verdict (pure)."""
    a = spec.analysis
    row: dict[str, Any] = {"canary_n": canary.n, "baseline_n": baseline.n,
                           "canary_errors": canary.errors, "baseline_errors": baseline.errors}
    if canary.n < a.min_samples or baseline.n == 0:
        return dict(row, verdict=INCONCLUSIVE)
    pc, pb = canary.errors / canary.n, baseline.errors / baseline.n
    se = math.sqrt(pc * (1 - pc) / canary.n + pb * (1 - pb) / baseline.n)
    error_fail = _error_fails(spec, pc, pb)
    lat = np.asarray(canary.latencies)
    p95, p99 = (float(np.percentile(lat, q)) for q in (95, 99))
    mw_p = None
    if a.mann_whitney and len(baseline.latencies) >= 2:
        from scipy.stats import mannwhitneyu

        mw_p = float(mannwhitneyu(lat, baseline.latencies, alternative="greater").pvalue)
    mw_fail = mw_p is not None and mw_p < 1.0 - a.confidence
    failed = error_fail or p95 > a.latency_p95 or mw_fail
    base_p95 = (float(np.percentile(baseline.latencies, 95)) if baseline.latencies
                else math.nan)
    return dict(row, canary_error_rate=pc, baseline_error_rate=pb, difference=pc - pb,
                difference_se=se, canary_p95=p95, canary_p99=p99, baseline_p95=base_p95,
                mann_whitney_p=mw_p, verdict=FAIL if failed else PASS)


def metric_failures(spec: Canary, row: dict[str, Any]) -> tuple[bool, bool]:
    """Whether a judged window fails the error metric and the latency metric, apart (Argo
    counts each metric's failures separately); the same tests as :func:`judge_window`."""
    errors = _error_fails(spec, row["canary_error_rate"], row["baseline_error_rate"])
    return bool(errors), bool(row["canary_p95"] > spec.analysis.latency_p95)


class CanaryProgress:
    """The rollout driven by judged windows: the current share and, once made, the decision.

    ``consecutive`` counting: ``failing_windows`` failing windows in a row roll back, a
    passing window resets that count, ``windows_per_step`` passing windows move to the next
    step, and reaching 100% is the promotion; an inconclusive window changes nothing.
    ``argo`` counting: per step one analysis run of ``windows_per_step`` windows, in which
    ``failing_windows`` failures of one metric (in total) roll back and an inconclusive
    window pauses the rollout (undecided, as ``inconclusiveLimit: 0`` does).
    """

    def __init__(self, spec: Canary, steps: tuple[float, ...] | None = None) -> None:
        self.spec = spec
        self.steps = tuple(spec.steps if steps is None else steps)
        self.step = 0
        self.passes = self.fails = 0
        self.failed = {"errors": 0, "latency": 0}
        self.decision: str | None = None
        self.share = self.steps[0]
        if spec.analysis.counting == "argo" and self.share >= 1.0:
            self._decide("promoted")

    def observe(self, row: dict[str, Any]) -> str | None:
        """Take one judged window (a :func:`judge_window` row); the decision if it made one."""
        if self.decision is not None:
            return self.decision
        if self.spec.analysis.counting == "argo":
            return self._argo(row)
        a = self.spec.analysis
        if row["verdict"] == FAIL:
            self.fails, self.passes = self.fails + 1, 0
            if self.fails >= a.failing_windows:
                return self._decide("rolled_back")
        elif row["verdict"] == PASS:
            self.fails, self.passes = 0, self.passes + 1
            if self.passes >= a.windows_per_step:
                return self._next_step()
        return None

    def _argo(self, row: dict[str, Any]) -> str | None:
        if row["verdict"] == INCONCLUSIVE:
            return self._decide("paused")
        errors, latency = metric_failures(self.spec, row)
        self.failed["errors"] += errors
        self.failed["latency"] += latency
        if max(self.failed.values()) >= self.spec.analysis.failing_windows:
            return self._decide("rolled_back")
        self.passes += 1
        if self.passes >= self.spec.analysis.windows_per_step:
            self.failed = {"errors": 0, "latency": 0}
            return self._next_step()
        return None

    def _next_step(self) -> str | None:
        self.step, self.passes = self.step + 1, 0
        self.share = self.steps[self.step]
        return self._decide("promoted") if self.share >= 1.0 else None

    def _decide(self, decision: str) -> str:
        self.decision = decision
        if decision == "rolled_back":
            self.share = 0.0
        elif decision == "promoted":
            self.share = 1.0
        return decision
