"""Conformance: the simulator's prediction of a scenario beside a real runner's measurement.

For each check of a scenario (``python -m sim conform``, docs/conformance.md):

* **predicted**: over N replications at the profile, the verdict (the check's own rule,
  :func:`labcore.checks.evaluate_checks`), ``p_pass`` and the **95% prediction interval**:
  where one run may land, i.e. the 2.5% and 97.5% order statistics of the single-run
  values (the lower one rounded down, the upper one up: with 10 replications it is their
  minimum and maximum). A replication without a value (one that did not recover) ranks
  above every value, so an interval whose top is such a run is open (``high`` None).
* **measured**: the runner's windows (``facts.npz``) through the same metric code
  (:func:`labcore.checks.scoped_metrics`) and the same judge (:func:`labcore.checks.judge`)
  as the runner sees them; a check the runner cannot observe (the registry, or the runner's
  own ``summary.json``) is "not measured" and neither agrees nor disagrees.
* ``inside``: the measured value lies in the interval (a missing value is inside only when
  some replication had none too); ``agree``: the two verdicts are the same; ``alike``:
  how many replications judged the check as the real run did, the verdict's counterpart of
  ``inside`` (one real run is one draw: it disagrees with a verdict its replications pass 40%
  of the time in about 40% of runs, whichever system is right).

The run as a whole agrees when at least one check was compared and none disagrees.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from labcore.checks import evaluate_checks, judge, scoped_metrics
from labcore.facts import WindowFacts
from labcore.metrics import aggregate
from labcore.registry import Runner, metric_key
from labcore.scenario import CheckSpec, Scenario

__all__ = ["CheckComparison", "Measured", "Predicted", "compare", "measure", "overall",
           "predict", "prediction_interval", "runner_not_measured"]


@dataclass(frozen=True)
class Predicted:
    """The simulator's side of one check."""

    passed: bool
    p_pass: float | None
    low: float | None
    high: float | None  #: None: the top of the interval is a run without a value
    mean: float | None
    replications: int
    missing: int


@dataclass(frozen=True)
class Measured:
    """The runner's side of one check: ``passed`` None when not measured (``reason``)."""

    value: float | None
    passed: bool | None
    reason: str | None = None


@dataclass(frozen=True)
class CheckComparison:
    """One row of the conformance table (and of ``conformance.json``)."""

    name: str
    metric: str
    over: str
    op: str
    threshold: float
    predicted: Predicted
    measured: Measured

    @property
    def compared(self) -> bool:
        return self.measured.passed is not None

    @property
    def agree(self) -> bool | None:
        return None if not self.compared else self.measured.passed == self.predicted.passed

    @property
    def alike(self) -> int | None:
        """How many of the replications judged the check as the measured run did."""
        pred = self.predicted
        if not self.compared or pred.p_pass is None:
            return None
        passing = round(pred.p_pass * pred.replications)
        return passing if self.measured.passed else pred.replications - passing

    @property
    def inside(self) -> bool | None:
        if not self.compared:
            return None
        value, pred = self.measured.value, self.predicted
        if value is None:
            return pred.missing > 0
        low_ok = pred.low is None and pred.missing > 0 or pred.low is not None and value >= pred.low
        # a plain bool: numpy values (a runner's utilization) compare to numpy.bool_, which
        # conformance.json cannot hold
        return bool(low_ok and (pred.high is None or value <= pred.high))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "over": self.over, "op": self.op,
                "threshold": self.threshold, "predicted": asdict(self.predicted),
                "measured": asdict(self.measured), "inside": self.inside, "agree": self.agree,
                "alike": self.alike}


def _clean(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def prediction_interval(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """The 2.5% (rounded down) and 97.5% (rounded up) order statistics of single runs;
    a run without a value ranks above all (None at either end means such a run)."""
    if not values:
        return None, None
    ranked = sorted(values, key=lambda v: (v is None, v if v is not None else 0.0))
    last = len(ranked) - 1
    return ranked[math.floor(0.025 * last)], ranked[math.ceil(0.975 * last)]


def predict(scenario: Scenario, per_run: Sequence[Mapping[str, float | None]],
            ) -> dict[str, Predicted]:
    """Per check key (``metric@over``), the prediction of ``per_run`` replications."""
    estimates = {k: e.as_dict() for k, e in aggregate(list(per_run)).items()}  # type: ignore[arg-type]
    out = {}
    for check, result in zip(scenario.checks, evaluate_checks(scenario.checks, estimates,
                                                              per_run)):
        values = [_clean(run.get(metric_key(check.metric, check.over))) for run in per_run]
        low, high = prediction_interval(values)
        out[_key(check)] = Predicted(result.passed, result.p_pass, low, high, result.observed,
                                     len(values), result.missing)
    return out


def _key(check: CheckSpec) -> str:
    return f"{check.label}|{metric_key(check.metric, check.over)}"


def runner_not_measured(summary: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """``{(metric, over): reason}`` for every check a runner's ``summary.json`` lists as not
    measured: Locust's ``skipped_checks``, a chaos run's ``targets`` not measured."""
    out = {(s["metric"], s.get("over", "run")): str(s.get("reason", "not measured"))
           for s in summary.get("skipped_checks") or []}
    for target in summary.get("targets") or []:
        if target.get("not_measured"):
            out[(target["metric"], target.get("over", "run"))] = str(target["not_measured"])
    return out


def measure(scenario: Scenario, facts: WindowFacts, runner: Runner, faults_applied: bool,
            not_measured: Mapping[tuple[str, str], str] | None = None) -> dict[str, Measured]:
    """Per check key, the runner's measurement recomputed from its window facts."""
    metrics = scoped_metrics(facts, scenario.checks)
    verdict = judge(scenario.checks, metrics, runner, faults_applied,
                    unmeasured_fails=runner != "chaos")
    judged = {(r.name, r.metric, r.over): r.passed for r in verdict.results}
    skipped = {(s["name"], s["metric"], s["over"]): s["reason"] for s in verdict.not_measured}
    out = {}
    for check in scenario.checks:
        ident = (check.label, check.metric, check.over)
        reason = skipped.get(ident) or (not_measured or {}).get((check.metric, check.over))
        value = _clean(metrics.get(metric_key(check.metric, check.over)))
        out[_key(check)] = (Measured(None, None, reason) if reason is not None
                            else Measured(value, judged[ident]))
    return out


def compare(scenario: Scenario, predicted: Mapping[str, Predicted],
            measured: Mapping[str, Measured]) -> list[CheckComparison]:
    """The rows of one scenario, in the scenario's check order."""
    return [CheckComparison(c.label, c.metric, c.over, c.op, c.value, predicted[_key(c)],
                            measured[_key(c)]) for c in scenario.checks]


def overall(rows: Iterable[CheckComparison]) -> bool:
    """Agreement: at least one check compared, and every compared check agrees."""
    agreements = [r.agree for r in rows if r.compared]
    return bool(agreements) and all(agreements)
