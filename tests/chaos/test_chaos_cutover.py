"""Chaos performs the blue-green cutover and measures it from the target (no sandbox here).

``cut_over_release`` sends the scenario's release to ``POST /admin/release/cutover`` (faked);
``measure_cutover`` reads ``GET /admin/release`` (faked) until the drain ends, at most the
scenario's drain timeout, and reports ``cutover.*``; those land in the run's window facts
and the verdict judges them with the one judge: a drain that ran out (null) fails.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from chaosomnisql import cutover, ledger
from chaosomnisql.cutover import (
    CUTOVER_METRICS,
    cut_over_release,
    cutover_measured,
    measure_cutover,
)
from chaosomnisql.verdict import judge_checks
from chaosomnisql.windows import RunWindows, measured_metrics

from labcore.registry import not_observed_reason
from sim import read_scenario

LONG, SHORT = "scenarios/blue_green_cutover.yaml", "scenarios/blue_green_cutover_short_drain.yaml"
DRAINING = {"active": "green", "phase": "draining", "inflight_at_switch": 4.0,
            "dropped_requests": None, "drain_seconds": None}
DRAINED = {**DRAINING, "phase": "done", "dropped_requests": 0.0, "drain_seconds": 1.3}
CUT = {**DRAINING, "phase": "done", "dropped_requests": 2.0, "drain_seconds": None}


def _config(source: str = LONG) -> dict[str, Any]:
    return {"omnisql_scenario": source, "omnisql_profile": "standin"}


def test_chaos_observes_every_cutover_fact() -> None:
    for metric in CUTOVER_METRICS:
        assert not_observed_reason(metric, "run", "chaos") is None


def test_only_a_finished_drain_is_measured() -> None:
    assert cutover_measured(DRAINING) == {}
    assert cutover_measured({"phase": "idle"}) == {}
    assert cutover_measured(DRAINED) == {"cutover.inflight_at_switch": 4.0,
                                         "cutover.dropped_requests": 0.0,
                                         "cutover.drain_seconds": 1.3}
    assert cutover_measured(CUT)["cutover.drain_seconds"] is None


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    ledger.reset()
    monkeypatch.setattr(cutover.time, "sleep", lambda s: None)
    seen: list[tuple[Any, ...]] = []
    answers = itertools.chain([DRAINING] * 3, itertools.repeat(CUT))

    def call(method: str, path: str, configuration: Any, body: Any = None) -> Any:
        seen.append((method, path, body))
        return DRAINING if method == "POST" else next(answers)

    monkeypatch.setattr(cutover, "admin_call", call)
    return seen


def test_the_cutover_is_the_scenarios_and_its_mark_ends_at_the_deadline(
        calls: list[tuple[Any, ...]]) -> None:
    cut_over_release(configuration=_config(SHORT))
    assert calls[0] == ("POST", "/admin/release/cutover", {"version": "v2", "drain_timeout": 0.5})
    record = ledger.LEDGER.last("blue_green")
    assert record is not None and record.restored_at is None
    out = measure_cutover(configuration=_config(SHORT))
    assert out["measured"]["cutover.dropped_requests"] == 2.0 and out["note"] is None
    assert record.restored_at == pytest.approx(record.started_at + 0.5)  # torn down then
    assert ledger.LEDGER.running["run_facts"]["cutover.drain_seconds"] is None


def test_a_drain_still_running_when_the_wait_ends_is_not_measured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.reset()
    monkeypatch.setattr(cutover, "admin_call", lambda *a, **k: DRAINING)
    ledger.LEDGER.injected("blue_green", "v2").started_at -= 100.0  # past 30 s + grace
    out = measure_cutover(configuration=_config())
    assert out["measured"] == {} and "not measured" in out["note"]
    journal = {"run": [{"activity": {"provider": {"func": "measure_cutover"}},
                        "status": "succeeded", "output": out}]}
    judged = judge_checks(journal, read_scenario(LONG, profile="standin").scenario.checks)
    assert {s["metric"] for s in judged.not_measured} >= {"cutover.dropped_requests",
                                                           "cutover.drain_seconds"}


def test_without_a_blue_green_release_or_a_cutover_the_activities_refuse() -> None:
    ledger.reset()
    with pytest.raises(ActivityFailed):
        cut_over_release(configuration=_config("scenarios/canary_bad_release.yaml"))
    with pytest.raises(ActivityFailed):
        measure_cutover(configuration=_config())


@pytest.mark.parametrize("status, passed", [(DRAINED, True), (CUT, False)])
def test_the_cutover_facts_reach_the_window_facts_and_the_judge(
        status: dict[str, Any], passed: bool) -> None:
    scenario = read_scenario(LONG, profile="standin").scenario
    windows = RunWindows(scenario, window=4.0, warmup=4.0, sustain=8.0, origin=0.0)
    for k in range(6):
        for _ in range(20):
            windows.request(k * 4.0 + 2.0, "acme", 0.05, "ok")
    facts = windows.facts([], elapsed=24.0, whole=cutover_measured(status))
    assert facts is not None
    got = measured_metrics(facts, scenario.checks)
    journal = {"status": "completed", "run": [], "omnisql_windows": {"measured": got}}
    results = {r.metric: r.passed for r in judge_checks(journal, scenario.checks).results}
    assert results["cutover.dropped_requests"] is passed
    assert results["cutover.drain_seconds"] is passed
    assert results["error_rate"] is True
