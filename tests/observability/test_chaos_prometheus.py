"""The chaos probes' Prometheus address: configured, or the sandbox's; always allowlisted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed
from chaosomnisql.prometheus import prometheus_url, runbook_query, within_prometheus_slo

BAD = str(Path(__file__).resolve().parents[2] / "scenarios" / "canary_bad_release.yaml")


def test_url_from_the_sandbox_state(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"prometheus_url": "http://127.0.0.1:9"}))
    config = {"omnisql_target": "sandbox", "omnisql_sandbox_dir": str(tmp_path)}
    assert prometheus_url(config) == "http://127.0.0.1:9"


def test_url_configured_and_allowlisted() -> None:
    config = {"omnisql_target": "eks", "omnisql_prometheus_url": "http://prom.example:9090"}
    with pytest.raises(ActivityFailed, match="refusing"):
        prometheus_url(config)
    config["omnisql_allowed_hosts"] = "prom.example"
    assert prometheus_url(config) == "http://prom.example:9090"
    with pytest.raises(ActivityFailed, match="no Prometheus"):
        prometheus_url({"omnisql_target": "eks"})


def test_sandbox_without_prometheus_is_named(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"gateway_url": "http://127.0.0.1:1"}))
    config = {"omnisql_target": "sandbox", "omnisql_sandbox_dir": str(tmp_path)}
    with pytest.raises(ActivityFailed, match="--no-prometheus"):
        prometheus_url(config)
    with pytest.raises(ActivityFailed, match="no running sandbox"):
        prometheus_url({"omnisql_target": "sandbox", "omnisql_sandbox_dir": str(tmp_path / "x")})


def test_unknown_runbook_query_and_slo_tolerance() -> None:
    config = {"omnisql_target": "eks", "omnisql_prometheus_url": "http://127.0.0.1:9",
              "omnisql_scenario": BAD}
    with pytest.raises(ActivityFailed, match="no runbook query"):
        runbook_query("nope", configuration=config)
    assert within_prometheus_slo(0.009, "error_rate", config)
    assert not within_prometheus_slo(0.011, "error_rate", config)
    assert not within_prometheus_slo(None, "latency_p95", config)
    assert within_prometheus_slo(1.4, "latency_p95", config)
