"""Releases and disasters: canary analysis, blue-green cutover, regional failover and the
resilience report (issue 4). Seeded and shrunk with overrides to run in seconds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sim import ScenarioError, compute_metrics, load_scenario, simulate
from sim.cli import main
from sim.model.release import FAIL, INCONCLUSIVE, PASS, _Tally, judge_window
from sim.resilience import disruption_type, resilience_report, wilson
from sim.run import run_replications

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

# Regional failover with a constant timeline and a small load: the exact-timeline cases.
CONSTANT_FAILOVER = [
    "workload.scale=0.05",
    "run.duration=20m",
    "failover.detection=1m",
    "failover.decision=1m",
    "failover.spinup=3m",
]
SET_CONSTANT_FAILOVER = [arg for o in CONSTANT_FAILOVER for arg in ("--set", o)]


def scenario(name: str, *overrides: str, profile: str | None = None):
    return load_scenario(SCENARIOS / f"{name}.yaml", profile=profile, overrides=list(overrides))


def tally(n: int, errors: int, latencies: list[float]) -> _Tally:
    t = _Tally()
    t.n, t.errors, t.latencies = n, errors, latencies
    return t


# --------------------------------------------------------------------------- the judge


def test_judge_reads_points_and_relative_increase() -> None:
    spec = scenario("canary_good_release").release
    fast = [0.1] * 200
    # 1.2% against 1.0%: +0.2 points (passes) but +20% relative (fails).
    canary, baseline = tally(1000, 12, fast), tally(10000, 100, fast)
    row = judge_window(spec, canary, baseline)
    assert row["verdict"] == PASS
    assert row["difference"] == pytest.approx(0.002)
    se = math.sqrt(0.012 * 0.988 / 1000 + 0.01 * 0.99 / 1e4)
    assert row["difference_se"] == pytest.approx(se)
    relative = spec.model_copy(update={"analysis": spec.analysis.model_copy(
        update={"error_reading": "relative"})})
    assert judge_window(relative, canary, baseline)["verdict"] == FAIL
    # +0.6 points fails in points.
    assert judge_window(spec, tally(1000, 16, fast), baseline)["verdict"] == FAIL


def test_judge_latency_min_samples_and_mann_whitney() -> None:
    spec = scenario("canary_good_release").release
    baseline = tally(10000, 0, [0.1] * 300)
    assert judge_window(spec, tally(99, 0, [0.1] * 99), baseline)["verdict"] == INCONCLUSIVE
    slow_tail = [0.1] * 180 + [2.0] * 20  # P95 = 2 s > 1.5 s
    row = judge_window(spec, tally(200, 0, slow_tail), baseline)
    assert row["verdict"] == FAIL and row["canary_p95"] == 2.0
    # Twice as slow, far under 1.5 s: only Mann-Whitney sees it.
    import numpy as np

    rng = np.random.default_rng(1)
    base = tally(10000, 0, list(rng.lognormal(np.log(0.05), 0.5, 300)))
    slower = tally(300, 0, list(rng.lognormal(np.log(0.10), 0.5, 300)))
    assert judge_window(spec, slower, base)["verdict"] == PASS
    mw = spec.model_copy(update={"analysis": spec.analysis.model_copy(
        update={"mann_whitney": True})})
    row = judge_window(mw, slower, base)
    assert row["verdict"] == FAIL and row["mann_whitney_p"] < 0.02


def test_wilson_interval_known_values() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


# --------------------------------------------------------------------------- canary runs


def test_bad_canary_is_rolled_back_after_two_failing_windows() -> None:
    s = scenario("canary_bad_release", "run.duration=5m", "workload.scale=0.5")
    result = simulate(s, 1)
    m = compute_metrics(result)
    assert m["canary.rolled_back"] == 1.0 and m["canary.promoted"] == 0.0
    # Two consecutive 1-minute windows fail: the decision is exactly two windows in.
    assert m["canary.decision_seconds"] == 120.0
    windows = result.logs["canary_windows"]
    assert [w["verdict"] for w in windows] == [FAIL, FAIL]
    assert all(w["share"] == 0.05 for w in windows)
    # Exposure: 5% of the ~500 attempts/s for 2 minutes (±15%), and ~2% of them failed.
    assert m["canary.exposed_requests"] == pytest.approx(0.05 * 500 * 120, rel=0.15)
    assert m["canary.exposed_failures"] / m["canary.exposed_requests"] == pytest.approx(
        0.02, abs=0.008)
    assert sum(w["canary_n"] for w in windows) == m["canary.exposed_requests"]


def test_good_canary_is_promoted_through_every_step() -> None:
    s = scenario("canary_good_release", "run.duration=6m", "workload.scale=0.5",
                 "release.analysis.window=30s", "release.analysis.windows_per_step=2")
    result = simulate(s, 1)
    m = compute_metrics(result)
    assert m["canary.promoted"] == 1.0 and m["canary.rolled_back"] == 0.0
    assert m["canary.decision_seconds"] == 3 * 2 * 30.0
    shares = [w["share"] for w in result.logs["canary_windows"]]
    assert shares == [0.05, 0.05, 0.25, 0.25, 0.5, 0.5]
    # The canary's share of attempts follows the steps.
    for w in result.logs["canary_windows"]:
        assert w["canary_n"] / (w["canary_n"] + w["baseline_n"]) == pytest.approx(
            w["share"], rel=0.2)


def test_slow_version_is_caught_by_mann_whitney_only() -> None:
    s = scenario("canary_bad_release", "run.duration=5m", "workload.scale=0.5",
                 profile="slow_version")
    result = simulate(s, 1)
    windows = result.logs["canary_windows"]
    assert compute_metrics(result)["canary.rolled_back"] == 1.0
    assert all(w["canary_p95"] < 1.5 and w["mann_whitney_p"] < 0.02 for w in windows)
    assert all(w["canary_error_rate"] - w["baseline_error_rate"] < 0.005 for w in windows)


def test_low_traffic_noise_is_of_the_order_of_the_threshold() -> None:
    full = compute_metrics(simulate(scenario("canary_good_release", "run.duration=4m"), 1))
    low = compute_metrics(simulate(scenario("canary_good_release", "run.duration=4m",
                                            profile="low_traffic"), 1))
    threshold = 0.005
    assert full["canary.window_error_se"] < threshold / 5
    assert low["canary.window_error_se"] > threshold / 2


def test_no_release_costs_nothing_and_shifts_nothing() -> None:
    from labcore.facts import OUTCOMES
    from sim.kernel import Environment, Recorder, Streams
    from sim.model import System

    s = scenario("baseline", "run.duration=3m")
    env = Environment()
    recorder = Recorder(env, s.run.window, list(s.workload.tenants), outcomes=OUTCOMES)
    system = System(env, s, Streams(1), recorder)
    assert system.release is None and system.client.observer is None
    assert system.gateway.forward == system.engine.submit
    # A release does not move the workload (common random numbers): before the canary
    # starts, the two runs are the same.
    plain = simulate(scenario("canary_good_release", "run.duration=3m", "workload.scale=0.2",
                              "release.at=170s"), 3)
    without = plain.scenario.model_copy(update={"release": None})
    other = simulate(without, 3)
    before = plain.arrays["start"] < 170
    assert (plain.arrays["outcomes"][before] == other.arrays["outcomes"][before]).all()


# --------------------------------------------------------------------------- blue-green


def test_blue_green_drains_without_cutting_queries(tmp_path: Path) -> None:
    # Long enough after the cutover for the SLO to be seen holding (slo.sustain).
    code = main(["run", str(SCENARIOS / "blue_green_cutover.yaml"), "--set", "run.duration=5m",
                 "--set", "workload.scale=0.3", "-R", "2", "--no-plots", "--jobs", "1",
                 "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0, summary["checks"]
    metrics = summary["metrics"]
    assert metrics["cutover.inflight_at_switch"]["mean"] > 10
    assert metrics["cutover.dropped_requests"]["mean"] == 0
    assert summary["resilience"]["types"]["software"]["status"] == "PolicyMet"


def test_short_drain_must_fail(tmp_path: Path) -> None:
    code = main(["run", str(SCENARIOS / "blue_green_cutover_short_drain.yaml"), "--set",
                 "run.duration=210s", "--no-plots", "--jobs", "1", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1
    failed = {c["metric"] for c in summary["checks"] if not c["passed"]}
    assert "cutover.dropped_requests" in failed
    assert summary["metrics"]["cutover.dropped_requests"]["mean"] > 0


# --------------------------------------------------------------------------- regional failover


def test_regional_failover_timeline_is_exact_with_constant_steps() -> None:
    result = simulate(scenario("regional_failover", *CONSTANT_FAILOVER), 1)
    m = compute_metrics(result)
    assert m["failover.detection_seconds"] == 60.0 and m["failover.spinup_seconds"] == 180.0
    assert m["failover.switch_seconds"] == 300.0  # 1 + 1 + 3 minutes
    assert m["failover.shifted_seconds"] == 360.0  # plus the 60 s TTL
    # Nothing can recover before the secondary is up; the DNS shift ends within the TTL
    # and the warm-up costs at most a few windows more.
    assert 300.0 <= m["rto_seconds"] <= 360.0 + 3 * s_window(result)
    assert 0.0 < m["rpo_seconds"] < 10.0  # async lag, median 1 s


def s_window(result) -> float:
    return result.scenario.run.window


def test_snapshot_rpo_is_uniform_over_the_interval_and_fails() -> None:
    s = scenario("regional_failover_snapshot_rpo", "workload.scale=0.002", "run.duration=6m")
    results = run_replications(s, 1, 40)
    rpo = [compute_metrics(r)["rpo_seconds"] for r in results]
    assert all(0.0 <= v < 900.0 for v in rpo)
    within = sum(v < 300.0 for v in rpo)
    low, high = wilson(within, len(rpo))
    assert low <= 1 / 3 <= high  # P(RPO < 5 min) = 5/15
    report = resilience_report(s, [compute_metrics(r) for r in results])
    assert report["types"]["region"]["status"] == "PolicyBreached"
    assert report["types"]["region"]["rpo_estimate"] > 300.0


def test_snapshot_rpo_scenario_must_fail(tmp_path: Path) -> None:
    code = main(["run", str(SCENARIOS / "regional_failover_snapshot_rpo.yaml"),
                 *SET_CONSTANT_FAILOVER,
                 "--no-plots", "--jobs", "1", "-R", "3", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1
    verdicts = {c["metric"]: c["passed"] for c in summary["checks"]}
    # The mean RPO of 3 replications may or may not be under 5 min (it is uniform over
    # 0-15 min); the scheme's worst case never is.
    assert verdicts["rto_seconds"] and not verdicts["failover.rpo_bound_seconds"]
    assert summary["metrics"]["failover.rpo_bound_seconds"]["mean"] == 900.0


def test_missing_connector_secrets_fail_every_call_after_failover(tmp_path: Path) -> None:
    code = main(["run", str(SCENARIOS / "regional_failover_missing_secrets.yaml"),
                 *SET_CONSTANT_FAILOVER,
                 "--no-plots", "--jobs", "1", "-R", "1", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1
    metrics = summary["metrics"]
    assert metrics["rto_seconds"]["mean"] is None  # never recovered
    assert metrics["connector.unauthorized"]["mean"] > 0
    assert metrics["failover.missing_dependencies"]["mean"] == 1
    region = summary["resilience"]["types"]["region"]
    assert region["status"] == "PolicyBreached" and region["rto_estimate"] is None


def test_regional_failover_passes_and_reports_region(tmp_path: Path) -> None:
    code = main(["run", str(SCENARIOS / "regional_failover.yaml"),
                 *SET_CONSTANT_FAILOVER,
                 "--no-plots", "--jobs", "1", "-R", "2", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0, summary["checks"]
    types = summary["resilience"]["types"]
    assert types["region"]["status"] == "PolicyMet"
    assert types["region"]["rto_within"]["p"] == 1.0
    assert {types[k]["status"] for k in ("software", "hardware", "az")} == {"NotApplicable"}


# --------------------------------------------------------------------------- schema and report


def test_schema_refuses_bad_release_and_failover() -> None:
    with pytest.raises(ScenarioError, match="failover"):
        scenario("regional_failover", "failover=null")
    with pytest.raises(ScenarioError, match="100%"):
        scenario("canary_good_release", "release.steps=[5%, 50%]")
    with pytest.raises(ScenarioError, match="after the run ends"):
        scenario("blue_green_cutover", "release.at=10m")


def test_disruption_types_and_missing_policy() -> None:
    assert disruption_type(scenario("az_loss")) == "az"
    assert disruption_type(scenario("regional_failover")) == "region"
    assert disruption_type(scenario("canary_bad_release")) == "software"
    assert disruption_type(scenario("baseline")) is None
    s = scenario("regional_failover", "resilience.region=null")
    report = resilience_report(s, [{"rto_seconds": 600.0, "rpo_seconds": 1.0}])
    assert report["types"]["region"]["status"] == "MissingPolicy"
    assert report["types"]["region"]["rto_estimate"] == 600.0
