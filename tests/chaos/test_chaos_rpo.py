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

    def __init__(self, at_loss: dict[str, Any] | None, visible: int) -> None:
        self.at_loss, self.visible = at_loss, visible

    def __call__(self, method: str, path: str, configuration: Any,
                 body: Any = None) -> dict[str, Any]:
        if path == "/admin/metadata/lag":
            return {"samples": [], "at_loss": self.at_loss}
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


def test_summary_shows_the_lag_beside_the_writes_lost() -> None:
    from chaosomnisql.summary import _lost_text

    text = _lost_text({"measured": True, "lost": 0, "last_acknowledged": 90,
                       "max_visible": 90, "rpo_seconds": 0.003, "lag_at_loss_seconds": 0.003})
    assert text.startswith("replica lag at the loss: 3.0 ms; acknowledged writes lost: 0")


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
