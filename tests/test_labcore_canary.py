"""The canary analysis rule (labcore.canary), and the stand-in's pieces around it, without
a stand-in: the window judge's thresholds, the rollout counting (consecutive and Argo's),
the gateway's per-version tally and the admin's analysis spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labcore.canary import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    CanaryProgress,
    Tally,
    judge_window,
)
from labcore.scenario import Canary
from labcore.scenario_file import read_scenario
from sandbox.admin.canary import Analysis, _steps, analysis_spec
from sandbox.errors import ApiError
from sandbox.standin import STANDIN_FILE, config_from_scenario
from sandbox.state import write_state
from sandbox.versions import VersionTally

REPO = Path(__file__).resolve().parent.parent


def spec(**analysis: Any) -> Canary:
    return Canary.model_validate({"kind": "canary", "at": "1m", "version": "v2",
                                  "analysis": {"min_samples": 100, **analysis}})


def tally(n: int, errors: int, latency: float = 0.05) -> Tally:
    return Tally(n, errors, [latency] * n)


def row(verdict: str, errors: bool = False, latency: bool = False) -> dict[str, Any]:
    """A judged window as the counting sees it (rates that fail the chosen metrics)."""
    return {"verdict": verdict, "canary_error_rate": 0.05 if errors else 0.0,
            "baseline_error_rate": 0.0, "canary_p95": 2.0 if latency else 0.1}


def test_the_error_threshold_is_half_a_point_over_the_baseline() -> None:
    s, base = spec(), tally(2000, 10)  # baseline 0.5%
    assert judge_window(s, tally(1000, 10), base)["verdict"] == PASS  # +0.5 points: not over
    assert judge_window(s, tally(1000, 11), base)["verdict"] == FAIL  # +0.6 points
    relative = spec(error_reading="relative", error_increase="50%")
    assert judge_window(relative, tally(1000, 7), base)["verdict"] == PASS  # 0.7% < 0.75%
    assert judge_window(relative, tally(1000, 8), base)["verdict"] == FAIL


def test_the_p95_bound_is_the_scenarios() -> None:
    s, base = spec(), tally(2000, 0)
    slow = Tally(200, 0, [0.1] * 189 + [1.6] * 11)  # P95 above 1.5 s
    assert judge_window(s, slow, base)["verdict"] == FAIL
    assert judge_window(spec(latency_p95="2s"), slow, base)["verdict"] == PASS


def test_fewer_than_min_samples_is_inconclusive() -> None:
    s = spec(min_samples=100)
    assert judge_window(s, tally(99, 50), tally(2000, 0))["verdict"] == INCONCLUSIVE
    assert judge_window(s, tally(100, 0), tally(0, 0))["verdict"] == INCONCLUSIVE


def test_consecutive_failures_roll_back_and_a_pass_resets_them() -> None:
    progress = CanaryProgress(spec(failing_windows=2, windows_per_step=3))
    assert progress.share == 0.05
    for verdict in (FAIL, PASS, FAIL, INCONCLUSIVE):
        assert progress.observe(row(verdict)) is None
    assert progress.observe(row(FAIL)) == "rolled_back" and progress.share == 0.0


def test_passing_windows_step_up_and_reach_the_promotion() -> None:
    progress = CanaryProgress(spec(windows_per_step=2))
    shares = []
    for _ in range(5):
        assert progress.observe(row(PASS)) is None
        shares.append(progress.share)
    assert shares == [0.05, 0.25, 0.25, 0.5, 0.5]
    assert progress.observe(row(PASS)) == "promoted" and progress.share == 1.0
    assert progress.observe(row(FAIL)) == "promoted"  # decided: later windows change nothing


def test_argo_counts_each_metric_in_total_and_pauses_when_inconclusive() -> None:
    argo = spec(counting="argo", failing_windows=2, windows_per_step=3)
    progress = CanaryProgress(argo)
    # One error failure and one latency failure: neither metric reaches 2 in this run.
    assert progress.observe(row(FAIL, errors=True)) is None
    assert progress.observe(row(FAIL, latency=True)) is None
    assert progress.observe(row(PASS)) is None and progress.share == 0.25  # next run
    assert progress.observe(row(FAIL, errors=True)) is None
    assert progress.observe(row(FAIL, errors=True)) == "rolled_back"
    paused = CanaryProgress(argo)
    assert paused.observe(row(INCONCLUSIVE)) == "paused" and paused.share == 0.05


def test_the_stand_ins_steps_start_at_the_deployed_weight() -> None:
    s = spec()
    assert _steps(s, 0.05) == (0.05, 0.25, 0.5, 1.0)
    assert _steps(s, 0.3) == (0.3, 0.5, 1.0)
    assert _steps(s, 1.0) == (1.0,)


def test_the_version_tally_counts_only_while_armed() -> None:
    versions = VersionTally()
    versions.routed(True)
    versions.record(True, False, 0.2)
    assert versions.take()["canary"]["n"] == 0
    versions.arm(True)
    versions.routed(True)
    versions.record(True, False, 0.2)
    versions.record(False, True, 0.01)
    window = versions.take()
    assert window["canary"] == {"n": 1, "errors": 1, "latencies": [0.2]}
    assert window["baseline"]["n"] == 1 and window["exposed"] == 1
    assert versions.take()["canary"]["n"] == 0 and versions.take()["exposed"] == 1


class _Plane:
    def __init__(self, root: Path) -> None:
        from sandbox.state import Layout

        self.layout = Layout(root)


def test_the_analysis_is_the_applied_scenarios_with_the_bodys_fields(tmp_path: Path) -> None:
    plane: Any = _Plane(tmp_path)
    assert analysis_spec(plane, {}, "v2") is None  # no scenario release, none asked for
    source = read_scenario(REPO / "scenarios/canary_bad_release.yaml", "standin")
    write_state(tmp_path / STANDIN_FILE, config_from_scenario(source.scenario))
    got = analysis_spec(plane, {}, "v2")
    assert got is not None and got.analysis == source.scenario.release.analysis  # type: ignore
    assert got.steps == source.scenario.release.steps  # type: ignore[union-attr]
    fast = analysis_spec(plane, {"analysis": {"window": 3, "min_samples": 20}}, "v2")
    assert fast is not None and (fast.analysis.window, fast.analysis.min_samples) == (3.0, 20)
    assert fast.analysis.error_increase == 0.005
    assert analysis_spec(plane, {"analysis": False}, "v2") is None
    for bad in ({"failing_windows": 0}, {"window": 1e308}, {"unknown": 1}):
        with pytest.raises(ApiError):
            analysis_spec(plane, {"analysis": bad}, "v2")


def test_an_analysis_judges_the_gateways_window_and_counts_exposure() -> None:
    s = spec(min_samples=10)
    analysis = Analysis(s, CanaryProgress(s))
    window = {"canary": {"n": 20, "errors": 4, "latencies": [0.1] * 20},
              "baseline": {"n": 400, "errors": 0, "latencies": []}, "exposed": 21}
    judged = analysis.take(window)
    assert judged["verdict"] == FAIL and judged["baseline_p95"] is None  # NaN is not JSON
    assert (analysis.exposed_requests, analysis.exposed_failures) == (21, 4)
    assert analysis.progress.observe(judged) is None  # the default: 2 failing windows
