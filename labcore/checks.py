"""Checks: data with one evaluation rule, shared by all three runners.

A check is ``{metric, op, value, over, require}`` from the scenario file. The simulator's exit
code, the Locust SLO gate and the chaos verdict all :func:`judge` through here, each check
over its own scope (``metric@over``, :func:`labcore.registry.metric_key`), with one rule,
:func:`passes`, so a threshold means the same thing everywhere. A missing observation (no
traffic, a run that never recovered) never passes; a check the runner cannot observe
(the registry says so) is reported "not measured", never judged on another scope's value.

Over replications (the simulator) each check also reports P(pass), the share of
replications that pass on their own; a replication without a value (one that did not
recover) is a failed replication there, never left out. The verdict rule is the check's:
the mean over replications passes (default), or ``require: {p_pass: 0.9}``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from .facts import WindowFacts
from .metrics import compute_metrics
from .registry import Runner, metric_key, not_observed_reason
from .scenario import CheckSpec

__all__ = ["OPERATORS", "CheckResult", "Judgement", "evaluate_checks", "judge", "passes",
           "rule_text", "scoped_metrics"]


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
    """One evaluated check, as written to ``summary.json``.

    ``observed`` is the mean over replications (None when any replication has no value);
    ``p_pass`` the share of replications that pass on their own, a replication without a
    value counted as failed; ``measured``/``missing`` how many replications had a value;
    ``measured_mean`` the mean over those that had one; ``rule`` the verdict rule.
    """

    name: str
    metric: str
    op: str
    threshold: float
    observed: float | None
    ci_low: float | None
    ci_high: float | None
    passed: bool
    over: str = "run"
    p_pass: float | None = None
    rule: str = "mean"
    measured: int = 1
    missing: int = 0
    measured_mean: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _value(value: Any) -> float | None:
    """A replication's value, None for a missing one (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def rule_text(check: CheckSpec) -> str:
    """``mean`` (the estimate on the mean passes) or ``p_pass >= 0.9``."""
    return "mean" if check.require is None else f"p_pass >= {check.require.p_pass:g}"


def _evaluate(check: CheckSpec, estimate: Mapping[str, float | None],
              values: list[float | None]) -> CheckResult:
    present = [v for v in values if v is not None]
    n_pass = sum(passes(check.op, v, check.value) for v in values)
    p_pass = n_pass / len(values) if values else None
    mean = estimate.get("mean")
    if check.require is None:
        passed = passes(check.op, mean, check.value)
    else:  # a tolerance for float division: 9 of 10 is 0.9
        passed = bool(values) and n_pass >= check.require.p_pass * len(values) - 1e-9
    return CheckResult(
        name=check.label, metric=check.metric, op=check.op, threshold=check.value,
        observed=mean, ci_low=estimate.get("ci_low"), ci_high=estimate.get("ci_high"),
        passed=passed, over=check.over, p_pass=p_pass, rule=rule_text(check),
        measured=len(present), missing=len(values) - len(present),
        measured_mean=sum(present) / len(present) if present else None)


def evaluate_checks(
    checks: tuple[CheckSpec, ...],
    observed: Mapping[str, Mapping[str, float | None]],
    per_run: Sequence[Mapping[str, float | None]] | None = None,
) -> list[CheckResult]:
    """Evaluate ``checks`` against estimates ``{metric key: {mean, ci_low, ci_high}}``.

    Keys are :func:`labcore.registry.metric_key` (``metric@over``, bare for ``run``). A metric
    absent from ``observed`` (a typo, or a fault metric in a run without faults) fails.
    ``per_run``: each replication's values by key, for P(pass) and ``require``; without it
    the estimate's mean is the one replication (a real runner's single measurement).
    """
    results = []
    for check in checks:
        key = metric_key(check.metric, check.over)
        estimate = observed.get(key, {})
        runs = per_run if per_run is not None else [{key: estimate.get("mean")}]
        values = [_value(run.get(key)) for run in runs]
        results.append(_evaluate(check, estimate, values))
    return results


def scoped_metrics(result: WindowFacts, checks: Iterable[CheckSpec]) -> dict[str, float | None]:
    """Every metric of one run over ``run``, plus each check's metric over the check's own
    scope, keyed by :func:`~labcore.registry.metric_key`."""
    checks = tuple(checks)
    metrics = compute_metrics(result)
    for over in sorted({c.over for c in checks if c.over != "run"}):
        scoped = compute_metrics(result, over)
        for check in checks:
            if check.over == over and check.metric in scoped:
                metrics[metric_key(check.metric, over)] = scoped[check.metric]
    return metrics


@dataclass(frozen=True)
class Judgement:
    """A runner's verdict: the checks judged, and those not measured with the reason."""

    results: list[CheckResult]
    not_measured: list[dict[str, str]]

    @property
    def passed(self) -> bool:
        """At least one check judged, and every judged check passed."""
        return bool(self.results) and all(r.passed for r in self.results)


def judge(checks: Iterable[CheckSpec], observed: Mapping[str, Any], runner: Runner,
          faults_applied: bool = True, unmeasured_fails: bool = True) -> Judgement:
    """Judge ``checks`` as ``runner`` sees them, each over its own scope.

    ``observed``: ``{metric key: estimate}`` where an estimate is a number (or None) or a
    ``{mean, ci_low, ci_high}`` mapping. A check ``runner`` cannot observe (registry) is not
    measured. A check it can observe but ``observed`` lacks fails (a missing observation),
    or with ``unmeasured_fails=False`` (chaos: the experiment chose not to measure it) is
    not measured either.
    """
    kept, skipped = [], []
    for check in checks:
        reason = not_observed_reason(check.metric, check.over, runner, faults_applied)
        key = metric_key(check.metric, check.over)
        if reason is None and not unmeasured_fails and key not in observed:
            reason = f"not measured by this {runner} run"
        if reason is None:
            kept.append(check)
        else:
            skipped.append({"name": check.label, "metric": check.metric, "over": check.over,
                            "reason": reason})
    estimates = {k: v if isinstance(v, Mapping) else {"mean": v} for k, v in observed.items()}
    return Judgement(evaluate_checks(tuple(kept), estimates), skipped)
