"""A real run's summary puts the sandbox Prometheus's reading beside /v1/stats'."""

from __future__ import annotations

import pytest
from chaos_helpers import EXPERIMENTS, ChaosSandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]


def test_canary_summary_shows_both_error_rate_readings(chaos_sandbox: ChaosSandbox) -> None:
    assert chaos_sandbox.state.get("prometheus_url"), "the sandbox runs Prometheus by default"
    code, out, journal = chaos_sandbox.run(EXPERIMENTS / "canary_bad_release.yaml")
    assert journal is not None, out[-3000:]
    target = next(t for t in journal["omnisql_summary"]["targets"]
                  if t["metric"] == "error_rate")
    assert target["is_measured"], out[-3000:]
    reading = target["prometheus"]
    # Prometheus is read over the probe's own seconds and shown beside the probe's /v1/stats
    # value (target["stats"]); the verdict's value (target["measured"]) comes from the
    # client's window facts, after client retries, and may differ from the gateway's count.
    assert reading is not None and reading["stats"] == target["stats"], (reading, target)
    assert reading["value"] is not None and 0.0 <= reading["value"] <= 1.0, reading
    traffic = next(e for e in journal["run"]
                   if e["activity"]["provider"]["func"] == "measure_traffic")
    assert reading["window_seconds"] == traffic["output"]["window"]
    assert "(stats) | prometheus" in out, out[-3000:]
