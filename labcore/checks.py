"""Checks: data with one evaluation rule, shared by all three runners.

A check is ``{metric, op, value}`` from the scenario file. The simulator's exit code,
the Locust SLO gate and the Chaos Toolkit tolerances all call :func:`passes`, so a
threshold means the same thing everywhere. A missing observation (no traffic, a run
that never recovered) never passes.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

from .scenario import CheckSpec

__all__ = ["OPERATORS", "passes", "CheckResult", "evaluate_checks"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def passes(op: str, observed: float | None, threshold: float) -> bool:
    """The single rule: ``observed op threshold``; ``None``/NaN fails."""
    if observed is None or (isinstance(observed, float) and math.isnan(observed)):
        return False
    return OPERATORS[op](observed, threshold)


@dataclass(frozen=True)
class CheckResult:
    """One evaluated check, as written to ``summary.json``."""

    name: str
    metric: str
    op: str
    threshold: float
    observed: float | None
    ci_low: float | None
    ci_high: float | None
    passed: bool
    over: str = "run"

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_checks(
    checks: tuple[CheckSpec, ...],
    observed: Mapping[str, Mapping[str, float | None]],
) -> list[CheckResult]:
    """Evaluate ``checks`` against estimates ``{metric key: {mean, ci_low, ci_high}}``.

    The key is the metric name for ``over: run`` and ``metric@over`` otherwise. A metric
    absent from ``observed`` (a typo, or a fault metric in a run without faults) fails.
    """
    results = []
    for check in checks:
        key = check.metric if check.over == "run" else f"{check.metric}@{check.over}"
        estimate = observed.get(key, {})
        mean = estimate.get("mean")
        results.append(
            CheckResult(
                name=check.label,
                metric=check.metric,
                op=check.op,
                threshold=check.value,
                observed=mean,
                ci_low=estimate.get("ci_low"),
                ci_high=estimate.get("ci_high"),
                passed=passes(check.op, mean, check.value),
                over=check.over,
            )
        )
    return results
