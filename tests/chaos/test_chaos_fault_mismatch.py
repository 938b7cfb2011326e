"""A run whose fault is not the scenario's does not judge the scenario's recovery (issue 18).

regional_failover's scenario loses a region; the one-region stand-in cannot, and its
experiment fails over the metadata store instead (RTO about 0 against the simulator's
~8.5 min). The stand-in says so when the scenario is applied (``faults.0`` not honoured);
the chaos verdict then reports the fault-timed checks "not measured" with that reason,
and still judges the RPO of the metadata failover it did inject."""

from __future__ import annotations

from chaosomnisql.verdict import fault_timed, judge_checks, verdict

from sim import read_scenario

REGIONAL = read_scenario("scenarios/regional_failover.yaml", profile="standin").scenario
REGION = {"faults.0": "region_loss: the stand-in is one region (no second region)"}


def _journal(**more: object) -> dict:
    return {"status": "completed", "deviated": False, "run": [], "rollbacks": [],
            "steady_states": {"before": {"steady_state_met": True}},
            "omnisql_windows": {"measured": {"rto_seconds": 0.0, "rpo_seconds": 0.4}}, **more}


def test_the_region_losss_rto_is_not_measured_on_a_metadata_failover() -> None:
    judged = judge_checks(_journal(omnisql_fault_not_honoured=REGION), REGIONAL.checks)
    assert [r.metric for r in judged.results] == ["rpo_seconds"]
    (skipped,) = judged.not_measured
    assert skipped["metric"] == "rto_seconds" and "region_loss" in skipped["reason"]
    assert verdict(_journal(omnisql_fault_not_honoured=REGION), REGIONAL.checks) == []


def test_a_run_of_the_scenarios_own_fault_is_judged_as_before() -> None:
    judged = judge_checks(_journal(), REGIONAL.checks)
    assert {r.metric for r in judged.results} == {"rto_seconds", "rpo_seconds"}


def test_fault_timed_metrics() -> None:
    assert fault_timed("rto_seconds") and fault_timed("tenants_except.umbrella.rto_seconds")
    assert fault_timed("incident.latency_p95") and not fault_timed("rpo_seconds")
    assert not fault_timed("error_rate")
