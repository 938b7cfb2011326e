"""``--slis-from prometheus``: the queries, and the one judge on Prometheus's readings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lt_helpers import baseline

from loadtests.gates import evaluate_gate
from loadtests.promslis import prometheus_url, read_slis, regate, sli_queries
from loadtests.recorder import ClientRecorder
from loadtests.session import OptionsError

TENANTS = ("acme", "globex", "initech", "umbrella")


def _client_gate(latency: float = 0.2):
    scenario = baseline()
    rec = ClientRecorder(TENANTS, scenario.run.window)
    for i in range(1200):
        rec.request(i / 20, TENANTS[i % 4], latency, "ok")
    return scenario, evaluate_gate(scenario, rec.window_facts(scenario, 60.0))


def _prom(ratio: str | None, p95: str | None):
    asked: list[str] = []

    def query(promql: str) -> list[dict[str, Any]]:
        asked.append(promql)
        value = p95 if promql.startswith("histogram_quantile") else ratio
        return [] if value is None else [{"metric": {}, "value": [0, value]}]
    return query, asked


def test_queries_span_the_measured_seconds_with_the_rules_error_definition() -> None:
    q = sli_queries(57)
    assert set(q) == {"error_rate", "latency_p95"}
    assert 'status=~"5..|429"' in q["error_rate"] and q["error_rate"].count("[57s]") == 2
    assert 'scope="gateway"' in q["error_rate"] and "or vector(0)" in q["error_rate"]
    assert q["latency_p95"].startswith("histogram_quantile(0.95,") and "[57s]" in q["latency_p95"]


def test_readings_and_no_data() -> None:
    query, asked = _prom("0.004", "0.31")
    assert read_slis(query, 50) == {"error_rate": 0.004, "latency_p95": 0.31}
    assert all("[50s]" in a for a in asked)
    query, _ = _prom(None, "NaN")
    assert read_slis(query, 50) == {"error_rate": None, "latency_p95": None}


def test_the_judge_decides_on_prometheus_and_both_readings_are_reported() -> None:
    scenario, client = _client_gate(0.2)
    assert client.passed
    gate, both = regate(scenario, client, {"error_rate": 0.03, "latency_p95": 0.3}, False)
    by_metric = {c.metric: c for c in gate.checks}
    assert not by_metric["error_rate"].passed and by_metric["error_rate"].observed == 0.03
    assert by_metric["latency_p95"].passed and not gate.passed
    assert both["error_rate"] == {"client": 0.0, "prometheus": 0.03}
    assert both["latency_p95"]["client"] == pytest.approx(0.2, rel=0.01)
    assert [s["metric"] for s in gate.skipped] == ["engine.utilization"]  # registry's word
    ok, _ = regate(scenario, client, {"error_rate": 0.0, "latency_p95": 1.4}, False)
    assert ok.passed
    missing, _ = regate(scenario, client, {}, False)  # Prometheus had nothing: not a pass
    assert not missing.passed and all(not c.passed for c in missing.checks)


def test_prometheus_url_from_the_state_allowlisted(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"prometheus_url": "http://127.0.0.1:9090/"}))
    assert prometheus_url(str(tmp_path), ()) == "http://127.0.0.1:9090"
    state.write_text(json.dumps({"prometheus_url": "http://prom.example:9090"}))
    with pytest.raises(OptionsError, match="allowlist"):
        prometheus_url(str(tmp_path), ())
    assert prometheus_url(str(tmp_path), ["prom.example"]) == "http://prom.example:9090"
    state.write_text(json.dumps({"gateway_url": "http://127.0.0.1:1"}))
    with pytest.raises(OptionsError, match="no-prometheus"):
        prometheus_url(str(tmp_path), ())
