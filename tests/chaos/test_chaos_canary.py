"""Chaos measures the canary's own checks from the target's analysis (no sandbox here).

``measure_canary`` reads ``GET /admin/canary`` (faked), waits for the decision at most the
scenario's limit, and reports ``canary.*``; those land in the run's window facts (so
``facts.npz`` and ``sim conform`` have them) and the verdict judges them with the one judge.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from chaosomnisql import canary, ledger
from chaosomnisql.canary import canary_measured, decision_limit, measure_canary
from chaosomnisql.cli import SHORT_MODE, default_timeout
from chaosomnisql.verdict import judge_checks
from chaosomnisql.windows import RunWindows, measured_metrics

from labcore.registry import not_observed_reason
from sim import read_scenario

SOURCE = "scenarios/canary_bad_release.yaml"
SCENARIO = read_scenario(SOURCE, profile="standin").scenario
ROLLED_BACK = {"decision": "rolled_back", "decision_seconds": 181.2, "exposed_requests": 190,
               "exposed_failures": 5, "windows": [{"time": 181.2, "verdict": "fail"}]}
UNDECIDED = {"decision": None, "decision_seconds": None, "exposed_requests": 40,
             "exposed_failures": 0, "windows": []}


def _config(**more: str) -> dict[str, Any]:
    return {"omnisql_scenario": SOURCE, "omnisql_profile": "standin", **more}


def test_chaos_observes_the_canarys_decision_time_and_exposure() -> None:
    for metric in ("canary.rolled_back", "canary.decision_seconds", "canary.exposed_requests"):
        assert not_observed_reason(metric, "run", "chaos") is None
    assert not_observed_reason("canary.window_error_se", "run", "chaos") is not None


def test_the_limit_is_the_scenarios_decision_check_unless_shortened() -> None:
    assert decision_limit(_config()) == (600.0, True)  # checks.1.value: 10m at standin
    assert decision_limit(_config(omnisql_canary_timeout="60")) == (60.0, False)
    assert decision_limit(_config(omnisql_canary_timeout="900")) == (600.0, True)


def test_undecided_is_measured_only_at_the_scenarios_own_limit() -> None:
    assert canary_measured(ROLLED_BACK, full=False) == {
        "canary.rolled_back": 1.0, "canary.promoted": 0.0, "canary.decision_seconds": 181.2,
        "canary.exposed_requests": 190.0, "canary.exposed_failures": 5.0}
    assert canary_measured(UNDECIDED, full=False) == {}
    full = canary_measured(UNDECIDED, full=True)
    assert full["canary.rolled_back"] == 0.0 and full["canary.decision_seconds"] is None
    paused = canary_measured({**UNDECIDED, "decision": "paused"}, full=True)
    assert paused["canary.rolled_back"] == 0.0 and paused["canary.promoted"] == 0.0


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> ledger.FaultRecord:
    ledger.reset()
    monkeypatch.setattr(canary.time, "sleep", lambda s: None)
    return ledger.LEDGER.injected("canary", "v2")


def test_measure_canary_waits_for_the_decision_and_ends_the_fault_there(
        deployed: ledger.FaultRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = itertools.chain([{"weight": 0.05, "analysis": UNDECIDED}] * 3,
                              itertools.repeat({"weight": 0.0, "analysis": ROLLED_BACK}))
    monkeypatch.setattr(canary, "admin_call", lambda *a, **k: next(answers))
    out = measure_canary(configuration=_config())
    assert out["measured"]["canary.rolled_back"] == 1.0 and out["note"] is None
    assert deployed.restored_at == pytest.approx(deployed.started_at + 181.2)
    assert ledger.LEDGER.running["run_facts"]["canary.decision_seconds"] == 181.2


def test_measure_canary_short_limit_leaves_it_unmeasured(
        deployed: ledger.FaultRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canary, "admin_call", lambda *a, **k: {"analysis": UNDECIDED})
    deployed.started_at -= 100.0  # the short limit (60 s) has passed already
    out = measure_canary(configuration=_config(omnisql_canary_timeout="60"))
    assert out["measured"] == {} and "not measured" in out["note"]
    journal = {"run": [{"activity": {"provider": {"func": "measure_canary"}},
                        "status": "succeeded", "output": out}]}
    judged = judge_checks(journal, SCENARIO.checks)
    assert {s["metric"] for s in judged.not_measured} >= {
        "canary.rolled_back", "canary.decision_seconds", "canary.exposed_requests"}


def test_a_target_without_an_analysis_fails_the_probe(
        deployed: ledger.FaultRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslib.exceptions import ActivityFailed

    monkeypatch.setattr(canary, "admin_call", lambda *a, **k: {"weight": 0.05})
    with pytest.raises(ActivityFailed):
        measure_canary(configuration=_config())


def test_the_canary_facts_reach_the_window_facts_and_the_judge() -> None:
    windows = RunWindows(SCENARIO, window=4.0, warmup=4.0, sustain=8.0, origin=0.0)
    for k in range(6):
        for _ in range(20):
            windows.request(k * 4.0 + 2.0, "acme", 0.05, "ok")
    whole = canary_measured({**ROLLED_BACK, "decision_seconds": 700.0}, full=True)
    facts = windows.facts([], elapsed=24.0, whole=whole)
    assert facts is not None
    got = measured_metrics(facts, SCENARIO.checks)
    assert got["canary.rolled_back"] == 1.0 and got["canary.decision_seconds"] == 700.0
    journal = {"status": "completed", "run": [], "omnisql_windows": {"measured": got}}
    results = {r.metric: r.passed for r in judge_checks(journal, SCENARIO.checks).results}
    # Rolled back, but after 700 s: the 10-minute check fails; the others pass.
    assert results["canary.rolled_back"] is True
    assert results["canary.decision_seconds"] is False
    assert results["canary.exposed_requests"] is True


def test_the_wrappers_limit_covers_the_decision_wait() -> None:
    full = default_timeout(SCENARIO, {})
    short = default_timeout(SCENARIO, dict(SHORT_MODE))
    assert full >= SCENARIO.run.warmup + 600.0
    assert short >= 10 + 60 and short < full
