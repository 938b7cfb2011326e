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
counted as passed; ``rto_seconds`` (and ``tenants_except.<t>.rto_seconds``) is observable only
when the fault timeline was actually run against the target: the load itself sends a
``traffic_surge``; other faults need ``--inject-faults`` or ``--faults-external``. With no observable check the gate fails: a gate that cannot say
no is not a gate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.checks import CheckResult, evaluate_checks
from labcore.metrics import compute_metrics
from labcore.scenario import CheckSpec, Scenario
from sim.run import RunResult

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAIL", "EXIT_PASS", "GateResult", "evaluate_gate", "is_observable"]

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2

_OBSERVABLE = re.compile(
    r"^(latency_(p50|p95|p99|mean)|error_rate|availability|throughput|request_rate|requests"
    r"|errors\.[a-z_]+|slo_window_compliance|cache\.hit_ratio|loadgen\.(late|bad_request)"
    r"|failed_requests"
    r"|tenant\.[A-Za-z][A-Za-z0-9_-]*\.(requests|error_rate|latency_(p50|p95|p99|mean))"
    r"|tenants_except\.[A-Za-z][A-Za-z0-9_-]*\.(requests|error_rate|latency_p95))$"
)
_RECOVERY = re.compile(r"^(tenants_except\.[A-Za-z][A-Za-z0-9_-]*\.)?rto_seconds$")


def is_observable(metric: str, faults_applied: bool = False) -> bool:
    """Whether a client-side load test measures ``metric`` (see the module docstring)."""
    if _RECOVERY.match(metric):
        return faults_applied
    return bool(_OBSERVABLE.match(metric))


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


def _metrics(result: RunResult, checks: list[CheckSpec], faults_applied: bool) -> dict[str, float | None]:
    metrics = {k: v for k, v in compute_metrics(result).items() if is_observable(k, faults_applied)}
    measured = result.arrays["start"] >= result.scenario.run.warmup - 1e-9
    totals = result.arrays["counters"][measured].sum(axis=0)
    for name, total in zip(result.arrays["counter_names"], totals.tolist()):
        if name.startswith("loadgen."):
            metrics[name] = float(total)
    for over in sorted({c.over for c in checks if c.over != "run"}):
        scoped = compute_metrics(result, over)  # type: ignore[arg-type]
        for check in checks:
            if check.over == over and check.metric in scoped:
                metrics[f"{check.metric}@{over}"] = scoped[check.metric]
    return metrics


def evaluate_gate(scenario: Scenario, result: RunResult, faults_applied: bool = False) -> GateResult:
    """Evaluate the scenario's observable checks on a load test's windows."""
    kept: list[CheckSpec] = []
    skipped: list[dict[str, str]] = []
    for check in scenario.checks:
        if is_observable(check.metric, faults_applied):
            kept.append(check)
        else:
            reason = ("the fault timeline was not run against the target"
                      if _RECOVERY.match(check.metric) else "not observable from the client")
            skipped.append({"name": check.label, "metric": check.metric, "reason": reason})
    metrics = _metrics(result, kept, faults_applied)
    observed = {k: {"mean": v, "ci_low": None, "ci_high": None} for k, v in metrics.items()}
    return GateResult(evaluate_checks(tuple(kept), observed), skipped, metrics)


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
        "metrics": {k: {"mean": v, "ci_low": None, "ci_high": None} for k, v in gate.metrics.items()},
        **info,
    }


def write_results(out: Path, summ: dict[str, Any], result: RunResult, data: dict[str, Any]) -> None:
    """A run folder like the simulator's: summary.json, scenario.yaml, timeseries.csv, PNG."""
    from sim.report import write_run

    write_run(out, summ, [result], data, plots=bool(result.arrays["start"].size))
    # The window table's model-side columns (provider 429s, retries, connector calls) are
    # zeros here, not observations: drop them rather than publish them.
    import pandas as pd

    path = out / "timeseries.csv"
    table = pd.read_csv(path)
    hidden = [c for c in table.columns if c.startswith(("connector.", "client."))]
    table.drop(columns=hidden).to_csv(path, index=False)


def verdict_text(summ: dict[str, Any]) -> Any:
    """The simulator's verdict table, titled for a load test, plus the skipped checks."""
    from sim.report import verdict_table

    table = verdict_table(summ)
    table.title = f"{summ['scenario']}: load test against {summ.get('host', '?')}"
    for skip in summ["skipped_checks"]:
        table.add_row(skip["name"], "", "", "", f"[yellow]skipped[/yellow]: {skip['reason']}")
    return table
