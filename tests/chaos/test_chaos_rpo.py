"""The chaos RPO probe measures the simulator's RPO: the replica's lag at the loss.

Before, ``acknowledged_writes_lost`` reported the span of the acknowledged writes missing on
the promoted replica, 0 s in every run on loopback, while the simulator's RPO is the
replication lag drawn at the loss: two quantities, so the RPO rows of the conformance
matrix were outside the interval by definition.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from chaos_helpers import ChaosSandbox
from chaosomnisql import actions, ledger, probes


class FakeAdmin:
    """The admin API's two answers the probe reads."""

    def __init__(self, at_loss: dict[str, Any] | None, visible: int,
                 snapshots: dict[str, Any] | None = None) -> None:
        self.at_loss, self.visible = at_loss, visible
        # No snapshot schedule (streaming metadata): the stand-in's answer without one.
        self.snapshots = snapshots or {"rpo_bound_seconds": None, "restored": None}

    def __call__(self, method: str, path: str, configuration: Any,
                 body: Any = None) -> dict[str, Any]:
        if path == "/admin/metadata/lag":
            return {"samples": [], "at_loss": self.at_loss}
        if path == "/admin/metadata/snapshots":
            return self.snapshots
        assert path == "/admin/metadata/writes", path
        return {"max_visible": self.visible}


@pytest.fixture
def fresh_ledger() -> Any:
    ledger.reset()
    ledger.LEDGER.running.pop("writer_acks", None)
    yield ledger.LEDGER
    ledger.reset()
    ledger.LEDGER.running.pop("writer_acks", None)


def _loss(fresh: Any, at_loss_delay: float = 0.1) -> dict[str, Any]:
    record = fresh.injected("az_loss", "az-a")
    return {"node": "pg-primary", "at": record.wall_started + at_loss_delay,
            "seconds": 0.0042, "streaming": True, "idle": False}


def test_rpo_is_the_lag_at_the_loss_when_no_write_was_lost(
        fresh_ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    at_loss = _loss(fresh_ledger)
    fresh_ledger.running["writer_acks"] = [(1.0, 20), (1.1, 40)]
    monkeypatch.setattr(probes, "admin_call", FakeAdmin(at_loss, visible=40))
    out = probes.acknowledged_writes_lost()
    assert out["lost"] == 0 and out["lost_span_seconds"] == 0.0
    assert out["lag_at_loss_seconds"] == 0.0042 and out["rpo_seconds"] == 0.0042
    assert out["measured"] == {"rpo_seconds": 0.0042} and out["rpo_source"] == "lag_at_loss"
    assert fresh_ledger.running["rpo_seconds"] == 0.0042  # into the window facts
    assert "run_facts" not in fresh_ledger.running  # no snapshot bound without a schedule


def test_rpo_is_at_least_the_span_of_the_writes_lost(
        fresh_ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    at_loss = _loss(fresh_ledger)
    fresh_ledger.running["writer_acks"] = [(1.0, 20), (1.5, 40), (2.0, 60)]
    monkeypatch.setattr(probes, "admin_call", FakeAdmin(at_loss, visible=40))
    out = probes.acknowledged_writes_lost()
    assert out["lost"] == 20 and out["lost_span_seconds"] == 0.5
    assert out["rpo_seconds"] == 0.5 and out["lag_at_loss_seconds"] == 0.0042


def test_a_lag_reading_older_than_the_fault_is_not_this_losss(
        fresh_ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = _loss(fresh_ledger, at_loss_delay=-120.0)  # a previous run's loss
    fresh_ledger.running["writer_acks"] = [(1.0, 20)]
    monkeypatch.setattr(probes, "admin_call", FakeAdmin(stale, visible=20))
    out = probes.acknowledged_writes_lost()
    assert out["lag_at_loss_seconds"] is None and out["rpo_source"] == "acknowledged_writes"
    assert out["rpo_seconds"] == 0.0


def test_without_lag_nor_writer_the_probe_fails(
        fresh_ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslib.exceptions import ActivityFailed

    monkeypatch.setattr(probes, "admin_call", FakeAdmin(None, visible=0))
    with pytest.raises(ActivityFailed):
        probes.acknowledged_writes_lost()


def _region_loss(fresh: Any) -> dict[str, Any]:
    record = fresh.injected("region_loss", "region")
    return {"node": "pg-primary", "at": record.wall_started + 0.1,
            "seconds": 0.0042, "streaming": True, "idle": False}


def _restored(fresh: Any, lost_after: float, rpo: float) -> dict[str, Any]:
    record = fresh.faults[-1]
    return {"snapshot": "metadata-1.dump", "snapshot_started_at": 0.0,
            "lost_at": record.wall_started + lost_after, "rpo_seconds": rpo}


def test_with_snapshots_the_rpo_is_the_restored_snapshots_age_and_the_bound_its_interval(
        fresh_ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """failover.metadata.mode: snapshot (sandbox.admin.snapshots): the lag of the streaming
    replica is not what the secondary restored; the snapshot's age is."""
    at_loss = _region_loss(fresh_ledger)
    snapshots = {"rpo_bound_seconds": 900.0,
                 "restored": _restored(fresh_ledger, 0.05, rpo=204.25)}
    fresh_ledger.running["writer_acks"] = [(1.0, 20), (100.0, 40), (200.0, 60)]
    monkeypatch.setattr(probes, "admin_call", FakeAdmin(at_loss, 20, snapshots))
    out = probes.acknowledged_writes_lost()
    assert out["lost"] == 40 and out["lost_span_seconds"] == 199.0
    assert out["rpo_source"] == "snapshot_at_loss" and out["rpo_seconds"] == 204.25
    assert out["lag_at_loss_seconds"] is None and out["snapshot_restored"]["rpo_seconds"] == 204.25
    assert out["measured"] == {"rpo_seconds": 204.25, "failover.rpo_bound_seconds": 900.0}
    assert fresh_ledger.running["run_facts"] == {"failover.rpo_bound_seconds": 900.0}


def test_a_restore_older_than_the_loss_is_not_this_losss(
        fresh_ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _region_loss(fresh_ledger)
    snapshots = {"rpo_bound_seconds": 900.0,
                 "restored": _restored(fresh_ledger, -300.0, rpo=12.0)}  # a previous run's
    fresh_ledger.running["writer_acks"] = [(1.0, 20), (3.5, 40)]
    monkeypatch.setattr(probes, "admin_call", FakeAdmin(None, 20, snapshots))
    out = probes.acknowledged_writes_lost()
    assert out["rpo_source"] == "acknowledged_writes" and out["rpo_seconds"] == 2.5
    assert out["measured"]["failover.rpo_bound_seconds"] == 900.0  # the schedule still ran


def test_a_zones_loss_under_a_snapshot_schedule_is_the_replicas_lag(
        fresh_ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An AZ loss promotes the streaming replica: no region failover, no snapshot bound."""
    at_loss = _loss(fresh_ledger)
    snapshots = {"rpo_bound_seconds": 900.0, "restored": None}
    fresh_ledger.running["writer_acks"] = [(1.0, 20)]
    monkeypatch.setattr(probes, "admin_call", FakeAdmin(at_loss, 20, snapshots))
    out = probes.acknowledged_writes_lost()
    assert out["rpo_source"] == "lag_at_loss" and out["measured"] == {"rpo_seconds": 0.0042}


def test_chaos_judges_the_snapshot_bound_as_the_simulator_does() -> None:
    from chaosomnisql.verdict import judge_checks
    from chaosomnisql.windows import RunWindows, measured_metrics

    from labcore.registry import not_observed_reason
    from sim import read_scenario

    assert not_observed_reason("failover.rpo_bound_seconds", "run", "chaos") is None
    checks = read_scenario("scenarios/regional_failover_snapshot_rpo.yaml",
                           profile="standin").scenario.checks
    out = {"measured": {"rpo_seconds": 204.25, "failover.rpo_bound_seconds": 900.0}}
    journal = {"run": [{"activity": {"provider": {"func": "acknowledged_writes_lost"}},
                        "status": "succeeded", "output": out}]}
    results = {r.metric: r.passed for r in judge_checks(journal, checks).results}
    assert results == {"rpo_seconds": True, "failover.rpo_bound_seconds": False}
    # The probe's whole-run fact reaches the window facts, as the canary's do.
    scenario = read_scenario("scenarios/regional_failover_snapshot_rpo.yaml",
                             profile="standin").scenario
    windows = RunWindows(scenario, window=4.0, warmup=4.0, sustain=8.0, origin=0.0)
    for k in range(6):
        for _ in range(20):
            windows.request(k * 4.0 + 2.0, "acme", 0.05, "ok")
    facts = windows.facts([], elapsed=24.0, whole={"failover.rpo_bound_seconds": 900.0})
    assert facts is not None
    assert measured_metrics(facts, checks)["failover.rpo_bound_seconds"] == 900.0


def test_summary_shows_the_lag_beside_the_writes_lost() -> None:
    from chaosomnisql.summary import _lost_text

    text = _lost_text({"measured": True, "lost": 0, "last_acknowledged": 90,
                       "max_visible": 90, "rpo_seconds": 0.003, "lag_at_loss_seconds": 0.003})
    assert text.startswith("replica lag at the loss: 3.0 ms; acknowledged writes lost: 0")
    text = _lost_text({"measured": True, "lost": 7, "last_acknowledged": 90, "max_visible": 83,
                       "rpo_seconds": 204.25, "lag_at_loss_seconds": None,
                       "snapshot_restored": {"rpo_seconds": 204.25}})
    assert text.startswith("restored the snapshot started 204.2 s before the loss; "
                           "acknowledged writes lost: 7")


@pytest.mark.sandbox
@pytest.mark.timeout(240)
def test_the_rpo_probe_reports_the_lag_at_a_real_loss(chaos_sandbox: ChaosSandbox,
                                                      fresh_ledger: Any) -> None:
    config = {"omnisql_target": "sandbox", "omnisql_sandbox_dir": str(chaos_sandbox.root)}
    chaos_sandbox.post("/admin/metadata/writes", {"n": 10})
    actions.start_metadata_writes(batch=20, interval=0.05, seconds=30, configuration=config)
    try:
        time.sleep(3.5)  # three or more of the stand-in's once-a-second lag samples
        series = chaos_sandbox.get("/admin/metadata/lag")
        assert len(series["samples"]) >= 2, series  # a running writer: lag is measured
        assert all(0.0 <= s < 5.0 for s in series["samples"]), series
        actions.fail_over_metadata(configuration=config)
        out = probes.acknowledged_writes_lost(configuration=config)
    finally:
        actions.reset_faults(configuration=config)
        actions.rebuild_metadata_replica(configuration=config)
    print(f"lag at the loss {out['lag_at_loss_seconds']} s, lost {out['lost']} writes")
    assert out["rpo_source"] == "lag_at_loss", out
    assert out["lag_at_loss_seconds"] is not None and out["lag_at_loss_seconds"] >= 0.0
    assert out["rpo_seconds"] == max(out["lag_at_loss_seconds"], out["lost_span_seconds"])
    assert out["last_acknowledged"] is not None and out["last_acknowledged"] > 10
