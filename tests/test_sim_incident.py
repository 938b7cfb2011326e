"""One incident however the load is written (issue 13): fault windows and SLO breach runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sim_helpers import ROOT

from labcore.metrics import compute_metrics, incident_windows
from labcore.scenario_file import ScenarioError, read_scenario
from sim import load_scenario, simulate

FIXTURES = ROOT / "tests" / "fixtures"
KEYS = ("incident.latency_p95", "incident.error_rate", "incident.start", "incident.seconds")


@pytest.fixture(scope="module")
def pair() -> dict[str, dict]:
    """The same arrivals written as traffic_surge faults and as a profile step."""
    return {how: compute_metrics(simulate(load_scenario(FIXTURES / f"surge_as_{how}.yaml")))
            for how in ("fault", "profile")}


def test_surge_as_fault_and_as_profile_give_the_same_incident(pair):
    fault, profile = pair["fault"], pair["profile"]
    for key in KEYS:
        assert fault[key] == pytest.approx(profile[key], rel=0.02), key
    # the same verdict: both miss the SLO during the event (the backlog times requests out)
    for metrics in (fault, profile):
        assert metrics["incident.latency_p95"] > 1.5
        assert metrics["incident.error_rate"] > 0.01


def test_the_incident_lasts_until_the_slo_is_met_again(pair):
    # the surge ends at 8m; the backlog keeps the SLO missed for a while after it
    fault = pair["fault"]
    assert fault["incident.start"] == pytest.approx(240.0)
    assert fault["incident.seconds"] > 240.0


def test_run_incident_overrides_the_derived_span(tmp_path: Path):
    data = yaml.safe_load((FIXTURES / "surge_as_profile.yaml").read_text())
    data["run"]["incident"] = {"start": "1m", "end": "3m"}  # before the surge: all good
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    metrics = compute_metrics(simulate(read_scenario(path).scenario))
    assert metrics["incident.start"] == pytest.approx(60.0)
    assert metrics["incident.seconds"] == pytest.approx(120.0)
    assert metrics["incident.error_rate"] == 0.0
    assert metrics["incident.latency_p95"] < 1.5


def test_no_fault_and_no_breach_means_no_incident(tmp_path: Path):
    data = yaml.safe_load((FIXTURES / "surge_as_profile.yaml").read_text())
    data["workload"]["profile"] = [{"at": "0s", "scale": 1}]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    result = simulate(read_scenario(path).scenario)
    assert incident_windows(result) is None
    assert not any(key.startswith("incident.") for key in compute_metrics(result))


def test_an_incident_must_end_after_it_starts(tmp_path: Path):
    data = yaml.safe_load((FIXTURES / "surge_as_profile.yaml").read_text())
    data["run"]["incident"] = {"start": "5m", "end": "4m"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError, match="incident end must be after its start"):
        read_scenario(path)
