"""Verdicts over replications (issue 18): P(pass) beside every verdict, the explicit rule
``require: {p_pass: ...}``, and a replication that did not recover counted as a failed one
and told apart from a measured RTO."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from sim_helpers import load, textbook, write

from labcore.checks import evaluate_checks, judge
from labcore.metrics import aggregate
from labcore.scenario import CheckSpec
from labcore.scenario_file import ScenarioError, read_scenario
from sim.cli import main
from sim.verdict import describe_observed

RTO = "rto_seconds"


def _check(**kw) -> CheckSpec:
    return CheckSpec(**{"metric": RTO, "op": "<=", "value": 600.0, **kw})


def _evaluate(check: CheckSpec, values: list[float | None]):
    per_run = [{RTO: v} for v in values]
    estimates = {k: e.as_dict() for k, e in aggregate(per_run).items()}
    return evaluate_checks((check,), estimates, per_run)[0]


def test_p_pass_is_the_share_of_replications_that_pass():
    result = _evaluate(_check(), [100.0, 200.0, 700.0, 300.0])
    assert result.p_pass == 0.75 and result.rule == "mean"
    assert result.observed == 325.0 and result.passed  # the mean rule: 325 <= 600
    assert (result.measured, result.missing, result.measured_mean) == (4, 0, 325.0)


def test_a_replication_that_did_not_recover_is_a_failed_replication():
    values = [100.0] * 9 + [None]
    mean_rule = _evaluate(_check(), values)
    assert mean_rule.p_pass == 0.9  # counted, not left out of the denominator
    assert (mean_rule.measured, mean_rule.missing) == (9, 1)
    assert mean_rule.measured_mean == 100.0
    assert mean_rule.observed is None and not mean_rule.passed  # no mean of 10 exists
    assert _evaluate(_check(require={"p_pass": 0.9}), values).passed
    assert not _evaluate(_check(require={"p_pass": 0.95}), values).passed
    assert not _evaluate(_check(require={"p_pass": 0.1}), [None] * 4).passed


def test_p_pass_rule_can_fail_where_the_mean_passes():
    values = [10.0] * 8 + [900.0] * 2  # mean 188 s passes 10 min; 2 in 10 runs do not
    assert _evaluate(_check(), values).passed
    strict = _evaluate(_check(require={"p_pass": 0.9}), values)
    assert strict.p_pass == 0.8 and strict.rule == "p_pass >= 0.9" and not strict.passed


def test_a_single_measurement_is_one_replication():
    verdict = judge([_check()], {RTO: 120.0}, "sim")
    assert verdict.results[0].p_pass == 1.0 and verdict.results[0].measured == 1
    missing = judge([_check(require={"p_pass": 0.5})], {RTO: None}, "sim").results[0]
    assert missing.p_pass == 0.0 and missing.missing == 1 and not missing.passed


def test_the_output_tells_a_missing_rto_from_a_measured_one():
    check = _evaluate(_check(), [100.0] * 9 + [None]).as_dict()
    text = describe_observed(check, {"replications": 10, "duration_seconds": 1200.0})
    assert text == "1m40s (mean of 9); 1 of 10: did not recover before the end of the run (20m)"


@pytest.mark.parametrize("require, field, words", [
    ({"p_pass": 1.5}, "checks.0.require.p_pass", "not between 0% and 100%"),
    ({"p_pass": 0}, "checks.0.require.p_pass", "greater than 0"),
    ({"p": 0.9}, "checks.0.require.p", "unknown field"),
    ("often", "checks.0.require", ""),
])
def test_a_bad_require_names_file_field_and_line(tmp_path, require, field, words):
    data = textbook(checks=[{"metric": "latency_p95", "op": "<=", "value": "2s",
                             "require": require}])
    path = write(tmp_path, data)
    with pytest.raises(ScenarioError) as info:
        read_scenario(path)
    lines = [p.where() for p in getattr(info.value, "problems", [info.value])]
    pattern = rf"{re.escape(str(path))}:\d+: {re.escape(field)}: .*{re.escape(words)}"
    assert any(re.match(pattern, line) for line in lines), lines


def test_require_is_read_from_the_scenario(tmp_path):
    data = textbook(checks=[{"metric": "latency_p95", "op": "<=", "value": "2s",
                             "require": {"p_pass": "90%"}}])
    assert load(tmp_path, data).checks[0].require.p_pass == 0.9


def test_scenario_level_p_pass_and_never_recovered(tmp_path, capsys):
    """Four replications of an M/M/8 engine slowed 3x until the end of the run: no
    replication recovers, and summary.json says so instead of reporting an RTO."""
    data = textbook(
        run={"duration": "12m", "warmup": "1m", "window": "1m", "replications": 4},
        slo={"latency_p95": "5s", "error_rate": "100%"},
        faults=[{"kind": "latency_injection", "target": "engine", "at": "6m",
                 "duration": "1h", "factor": 3.0}],
        checks=[{"name": "recovers", "metric": "rto_seconds", "op": "<=", "value": "5m"},
                {"name": "p95 before", "metric": "latency_p95", "op": "<=", "value": "4s",
                 "over": "before_fault", "require": {"p_pass": 0.5}}])
    out = tmp_path / "run"
    assert main(["run", str(write(tmp_path, data)), "--no-plots", "--out", str(out),
                 "-j", "1"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    rto, p95 = summary["checks"]
    assert rto["observed"] is None and rto["p_pass"] == 0.0
    assert (rto["measured"], rto["missing"]) == (0, 4)
    assert rto["missing_means"] == "did not recover before the end of the run (12m)"
    printed = capsys.readouterr()
    assert ("observed did not recover before the end of the run (12m) (in 4 of 4 "
            "replications)") in printed.out + printed.err
    runs = pd.read_csv(out / "replications.csv")["latency_p95@before_fault"]
    assert p95["p_pass"] == pytest.approx(float((runs <= 4.0).mean()))
    assert p95["rule"] == "p_pass >= 0.5" and p95["missing"] == 0 and p95["missing_means"] is None
    assert p95["passed"] == (p95["p_pass"] >= 0.5)
