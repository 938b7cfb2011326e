"""The chaos summary puts Prometheus's reading beside /v1/stats', over the same seconds."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from chaosomnisql.readings import error_ratio_query, latency_p95_query, prometheus_readings
from chaosomnisql.summary import build_summary, render

from sim import read_scenario

ROOT = Path(__file__).resolve().parents[2]
BAD = str(ROOT / "scenarios" / "canary_bad_release.yaml")
END = "2026-11-29T05:00:30.500000"
END_UNIX = datetime(2026, 11, 29, 5, 0, 30, 500000, tzinfo=timezone.utc).timestamp()


def _traffic(args: dict[str, Any], measured: dict[str, float], window: int = 30) -> dict:
    return {"activity": {"name": "traffic", "provider": {"func": "measure_traffic",
                                                         "arguments": args}},
            "status": "succeeded", "end": END,
            "output": {"requests": 100, "errors": 2, "window": window, "measured": measured}}


def _journal(*entries: dict) -> dict:
    return {"status": "completed", "deviated": False, "run": list(entries), "rollbacks": [],
            "steady_states": {"before": {"steady_state_met": True, "probes": []},
                              "after": {"steady_state_met": True, "probes": []}}}


class FakeProm:
    """Answers the ratio with 0.025 and the P95 with 0.41 s, recording what it was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.asked: list[tuple[str, float]] = []
        self.fail = fail

    def __call__(self, promql: str, at: float) -> list[dict[str, Any]]:
        self.asked.append((promql, at))
        if self.fail:
            raise RuntimeError("prometheus down")
        value = "0.41" if promql.startswith("histogram_quantile") else "0.025"
        return [{"metric": {}, "value": [at, value]}]


def test_queries_cover_the_probes_window_and_tenants() -> None:
    q = error_ratio_query(30)
    assert 'status=~"5..|429"' in q and q.count("[30s]") == 2 and "tenant" not in q
    pooled = error_ratio_query(12, ["acme", "globex"])
    assert pooled.count('tenant=~"acme|globex"') == 2 and "[12s]" in pooled
    assert "[45s]" in latency_p95_query(45) and "0.95" in latency_p95_query(45)


def test_readings_at_the_probes_end_over_its_window() -> None:
    prom = FakeProm()
    journal = _journal(_traffic({}, {"error_rate": 0.02, "latency_p95": 0.4}))
    out = prometheus_readings(journal, prom)
    assert out["error_rate"]["value"] == 0.025 and out["error_rate"]["stats"] == 0.02
    assert out["latency_p95"]["value"] == 0.41 and out["latency_p95"]["window_seconds"] == 30
    assert {at for _, at in prom.asked} == {END_UNIX}
    assert all("[30s]" in q for q, _ in prom.asked)


def test_per_tenant_latency_is_not_read_and_failures_read_none() -> None:
    args = {"tenants": ["acme"], "prefix": "tenants_except.umbrella."}
    journal = _journal(_traffic(args, {"tenants_except.umbrella.error_rate": 0.0}))
    out = prometheus_readings(journal, FakeProm())
    assert out["tenants_except.umbrella.latency_p95"]["query"] is None
    assert out["tenants_except.umbrella.latency_p95"]["value"] is None
    assert out["tenants_except.umbrella.error_rate"]["value"] == 0.025
    assert prometheus_readings(journal, FakeProm(fail=True))[
        "tenants_except.umbrella.error_rate"]["value"] is None
    nan = prometheus_readings(_journal(_traffic({}, {})),
                              lambda q, at: [{"metric": {}, "value": [at, "NaN"]}])
    assert nan["error_rate"]["value"] is None
    old = _traffic({}, {})
    del old["output"]["window"]  # a journal from before the probe reported its window
    assert prometheus_readings(_journal(old), FakeProm()) == {}


def test_summary_prints_both_readings_side_by_side() -> None:
    source = read_scenario(BAD, profile="standin")
    journal = _journal(_traffic({}, {"error_rate": 0.02, "latency_p95": 0.4}))
    plain = render(build_summary(journal, source, None))
    assert "prometheus" not in plain
    summary = build_summary(journal, source, None, prometheus_readings(journal, FakeProm()))
    target = next(t for t in summary["targets"] if t["metric"] == "error_rate")
    assert target["measured"] == 0.02 and target["prometheus"]["value"] == 0.025
    line = next(ln for ln in render(summary).splitlines() if "error_rate over run" in ln)
    assert "0.02 (stats) | prometheus 0.025 (same 30 s)" in line and "simulator" in line
    assert not summary["passed"]  # the judge stays on /v1/stats' 2% (> 1%)


def test_control_reads_prometheus_only_where_there_is_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from chaosomnisql.controls import verdict as control

    prom = FakeProm()
    monkeypatch.setattr(control, "prometheus_query",
                        lambda q, configuration=None, secrets=None, at=None: prom(q, at))
    base = {"omnisql_target": "eks", "omnisql_scenario": BAD, "omnisql_profile": "standin"}
    with_prom = {**base, "omnisql_prometheus_url": "http://127.0.0.1:9"}
    journal = _journal(_traffic({}, {"error_rate": 0.0, "latency_p95": 0.4}))
    control.after_experiment_control({}, journal, replications=0, configuration=with_prom)
    assert "0 (stats) | prometheus 0.025" in capsys.readouterr().out and prom.asked
    prom.asked.clear()
    journal = _journal(_traffic({}, {"error_rate": 0.0, "latency_p95": 0.4}))
    control.after_experiment_control({}, journal, replications=0, configuration=base)
    assert "prometheus" not in capsys.readouterr().out and not prom.asked
