"""The SLO gate: a load test's exit code from the scenario's checks.

The checks are the scenario file's (``{metric, op, value, over}``) and are evaluated by
:func:`labcore.checks.evaluate_checks`, i.e. with :func:`labcore.checks.passes`, the single rule
the simulator's exit code and the Chaos Toolkit tolerances use. The metrics come from
:mod:`labcore.metrics` run over the client's windows (:mod:`loadtests.recorder`), so a
``latency_p95`` here is computed exactly as the simulator computes its own: from 2% log
bins, within ±1% of the exact order statistic. Locust's rounded percentiles (two
significant digits: 1,549 ms is shown as 1,500 ms) never decide a verdict.

A client sees only some metrics. Checks on the others (tier utilisation, RPO, provider
429 counts...) are *skipped*, listed in the summary and the printed verdict, and never
counted as passed. Which metrics a client sees is the registry's word
(:mod:`labcore.registry`, runner ``locust``): ``rto_seconds`` (and
``tenants_except.<t>.rto_seconds``) only when the fault timeline was actually run against
the target (the load itself sends a ``traffic_surge``; other faults need
``--inject-faults`` or ``--faults-external``). With no observable check the gate fails: a
gate that cannot say no is not a gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.checks import CheckResult, judge, scoped_metrics
from labcore.facts import WindowFacts
from labcore.registry import not_observed_reason
from labcore.scenario import CheckSpec, Scenario

__all__ = [
    "EXIT_BAD_INPUT", "EXIT_FAIL", "EXIT_PASS", "GateResult", "evaluate_gate", "is_observable",
]

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2

def is_observable(metric: str, faults_applied: bool = False, scope: str = "run") -> bool:
    """Whether a client-side load test measures ``metric`` over ``scope``: the registry's
    ``locust`` observers (:mod:`labcore.registry`)."""
    return not_observed_reason(metric, scope, "locust", faults_applied) is None


@dataclass(frozen=True)
class GateResult:
    """The verdict: evaluated checks, skipped checks with reasons, and the metrics."""

    checks: list[CheckResult]
    skipped: list[dict[str, str]]
    metrics: dict[str, float | None]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_FAIL


def _metrics(result: WindowFacts, checks: list[CheckSpec],
             faults_applied: bool) -> dict[str, float | None]:
    # The checks' own scopes are observable (the judge kept only those); of the whole-run
    # metrics, only those a client sees are published.
    metrics = {k: v for k, v in scoped_metrics(result, checks).items()
               if "@" in k or is_observable(k, faults_applied)}
    measured = result.arrays["start"] >= result.scenario.run.warmup - 1e-9
    totals = result.arrays["counters"][measured].sum(axis=0)
    for name, total in zip(result.arrays["counter_names"], totals.tolist()):
        if name.startswith("loadgen."):
            metrics[name] = float(total)
    return metrics


def evaluate_gate(scenario: Scenario, result: WindowFacts,
                  faults_applied: bool = False) -> GateResult:
    """Evaluate the scenario's observable checks on a load test's windows."""
    observable = [c for c in scenario.checks
                  if not_observed_reason(c.metric, c.over, "locust", faults_applied) is None]
    metrics = _metrics(result, observable, faults_applied)
    verdict = judge(scenario.checks, metrics, "locust", faults_applied)
    return GateResult(verdict.results, verdict.not_measured, metrics)


def summary(scenario: Scenario, gate: GateResult, info: dict[str, Any]) -> dict[str, Any]:
    """``summary.json`` of a load test: the simulator's layout plus what the client ran."""
    return {
        "runner": "locust",
        "scenario": scenario.name,
        "description": scenario.description.strip(),
        "replications": 1,
        "seed": scenario.run.seed,
        "seeds": [scenario.run.seed],
        "duration_seconds": scenario.run.duration,
        "warmup_seconds": scenario.run.warmup,
        "window_seconds": scenario.run.window,
        "passed": gate.passed,
        "checks": [c.as_dict() for c in gate.checks],
        "skipped_checks": gate.skipped,
        "metrics": {k: {"mean": v, "ci_low": None, "ci_high": None}
                    for k, v in gate.metrics.items()},
        **info,
    }


def write_results(out: Path, summ: dict[str, Any], result: WindowFacts,
                  data: dict[str, Any]) -> None:
    """A run folder like the simulator's: summary.json, scenario.yaml, timeseries.csv, PNG,
    and ``facts.npz``: the client's windows for ``python -m sim conform``."""
    from labcore.facts import save_facts
    from sim import write_run

    write_run(out, summ, [result], data, plots=bool(result.arrays["start"].size))
    save_facts(out / "facts.npz", result)
    # The window table's model-side columns (provider 429s, retries, connector calls) are
    # zeros here, not observations: drop them rather than publish them.
    import pandas as pd

    path = out / "timeseries.csv"
    table = pd.read_csv(path)
    hidden = [c for c in table.columns if c.startswith(("connector.", "client."))]
    table.drop(columns=hidden).to_csv(path, index=False)


def verdict_text(summ: dict[str, Any]) -> Any:
    """The simulator's verdict table, titled for a load test, plus the skipped checks."""
    from sim import verdict_table

    table = verdict_table(summ)
    table.title = f"{summ['scenario']}: load test against {summ.get('host', '?')}"
    for skip in summ["skipped_checks"]:
        table.add_row(skip["name"], "", "", "", f"[yellow]skipped[/yellow]: {skip['reason']}")
    return table
