"""A run whose fault is not the scenario's does not judge the scenario's recovery (issue 18).

When the stand-in cannot inject a scenario's fault it says so when the scenario is applied
(``faults.N`` not honoured, e.g. a gray failure); the chaos verdict then reports the
fault-timed checks "not measured" with that reason, and still judges the rest. The region
loss used to be such a fault; the stand-in now acts it out, so regional_failover's own
stand-in lists no fault gap and its RTO is judged."""

from __future__ import annotations

import pytest
from chaoslib.exceptions import ActivityFailed
from chaosomnisql import actions
from chaosomnisql.probes import nothing_injected
from chaosomnisql.verdict import fault_timed, judge_checks, verdict

from sim import read_scenario

REGIONAL = read_scenario("scenarios/regional_failover.yaml", profile="standin").scenario
REGION = {"faults.0": "gray_failure: the fault API cannot degrade a zone's tier"}


def _journal(**more: object) -> dict:
    return {"status": "completed", "deviated": False, "run": [], "rollbacks": [],
            "steady_states": {"before": {"steady_state_met": True}},
            "omnisql_windows": {"measured": {"rto_seconds": 0.0, "rpo_seconds": 0.4}}, **more}


def test_an_rto_is_not_measured_when_the_fault_is_not_the_scenarios() -> None:
    judged = judge_checks(_journal(omnisql_fault_not_honoured=REGION), REGIONAL.checks)
    assert [r.metric for r in judged.results] == ["rpo_seconds"]
    (skipped,) = judged.not_measured
    assert skipped["metric"] == "rto_seconds" and "gray_failure" in skipped["reason"]
    assert verdict(_journal(omnisql_fault_not_honoured=REGION), REGIONAL.checks) == []


def test_a_run_of_the_scenarios_own_fault_is_judged_as_before() -> None:
    judged = judge_checks(_journal(), REGIONAL.checks)
    assert {r.metric for r in judged.results} == {"rto_seconds", "rpo_seconds"}


def test_the_region_loss_is_no_longer_a_fault_the_standin_cannot_inject() -> None:
    from sandbox.standin import not_honoured

    gaps = not_honoured(REGIONAL, tuple(REGIONAL.workload.tenants))
    assert not [path for path in gaps if path.startswith("faults.")], gaps


def test_fault_timed_metrics() -> None:
    assert fault_timed("rto_seconds") and fault_timed("tenants_except.umbrella.rto_seconds")
    assert fault_timed("incident.latency_p95") and not fault_timed("rpo_seconds")
    assert not fault_timed("error_rate")


def test_a_failover_under_way_is_injected_and_a_completed_one_is_the_system(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The after-hypothesis (``nothing_injected``) and ``end_metadata_kill`` see a region loss
    as injected until its failover completed; then the secondary region is the system."""
    quiet = {"zones_lost": [], "providers": {}, "canary": None, "metadata_needs_rebuild": [],
             "metadata_primary_killed": False}
    assert nothing_injected({**quiet, "region": None})
    assert nothing_injected({**quiet, "region": {"phase": "failed_over"}})
    for phase in ("lost", "spinning_up", "shifting"):
        assert not nothing_injected({**quiet, "region": {"phase": phase}})

    calls: list[str] = []

    def answer(method: str, path: str, configuration: object, body: object = None) -> dict:
        calls.append(f"{method} {path}")
        return {**quiet, "metadata_primary_killed": True, "region": {"phase": "shifting"}}

    monkeypatch.setattr(actions, "admin_call", answer)
    monkeypatch.setattr(actions, "target_name", lambda configuration: "sandbox")
    with pytest.raises(ActivityFailed, match="region"):
        actions.end_metadata_kill({})
    assert calls == ["GET /faults"]  # refused before any reset
