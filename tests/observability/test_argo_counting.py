"""The simulator's judge with Argo Rollouts' counting (``release.analysis.counting: argo``):
what ``python -m sim export argo-rollouts`` writes, so that the simulator's false-rollback
and missed-detection rates are those of the exported rule. Scripted verdicts show where it
differs from the default (consecutive failing windows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sim.model.release as release
from labcore.scenario_file import ScenarioError
from sim import load_scenario, simulate

BAD = Path(__file__).resolve().parents[2] / "scenarios" / "canary_bad_release.yaml"
SMALL = ("workload.scale=0.02", "run.duration=11m", "run.warmup=0s", "release.at=1m",
         "replications=1")


def _row(verdict: str) -> dict[str, Any]:
    failed = verdict == release.FAIL
    return {"canary_n": 500, "baseline_n": 9500, "canary_errors": 10 if failed else 0,
            "baseline_errors": 0, "canary_error_rate": 0.02 if failed else 0.0,
            "baseline_error_rate": 0.0, "difference": 0.02 if failed else 0.0,
            "difference_se": 0.006, "canary_p95": 0.05, "canary_p99": 0.1,
            "baseline_p95": 0.05, "mann_whitney_p": None, "verdict": verdict}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace the judge by a script of verdicts (then passes)."""
    script: list[str] = []

    def judge(spec: Any, canary: Any, baseline: Any) -> dict[str, Any]:
        return _row(script.pop(0) if script else release.PASS)

    monkeypatch.setattr(release, "judge_window", judge)
    yield script


def _decision(counting: str) -> dict[str, float | None]:
    overrides = (*SMALL[:-1], f"release.analysis.counting={counting}")
    facts = simulate(load_scenario(BAD, None, overrides), seed=1).facts
    return {k: facts[k] for k in ("canary.rolled_back", "canary.promoted",
                                  "canary.decision_seconds")}


def test_fail_pass_fail_rolls_back_only_with_argo(scripted: list[str]) -> None:
    # Argo counts failures in the step's analysis run (failureLimit 1: the 2nd fails it);
    # the default counting resets on the passing window and goes on to promote.
    F, P = release.FAIL, release.PASS
    scripted[:] = [F, P, F]
    argo = _decision("argo")
    assert argo == {"canary.rolled_back": 1.0, "canary.promoted": 0.0,
                    "canary.decision_seconds": 180.0}
    scripted[:] = [F, P, F]
    consecutive = _decision("consecutive")
    assert consecutive["canary.rolled_back"] == 0.0


def test_argo_promotes_after_count_windows_per_step(scripted: list[str]) -> None:
    # 3 steps below 100% x count 3 (windows_per_step) x 1-min windows
    assert _decision("argo") == {"canary.rolled_back": 0.0, "canary.promoted": 1.0,
                                 "canary.decision_seconds": 540.0}


def test_argo_pauses_on_an_inconclusive_window(scripted: list[str]) -> None:
    scripted[:] = [release.PASS, release.INCONCLUSIVE]
    assert _decision("argo") == {"canary.rolled_back": 0.0, "canary.promoted": 0.0,
                                 "canary.decision_seconds": None}


def test_each_metric_counts_its_own_failures() -> None:
    spec = load_scenario(BAD).release
    row = _row(release.FAIL)
    assert release.metric_failures(spec, row) == (True, False)  # type: ignore[arg-type]
    slow = dict(_row(release.PASS), canary_p95=2.0)
    assert release.metric_failures(spec, slow) == (False, True)  # type: ignore[arg-type]


def test_argo_counting_refuses_mann_whitney() -> None:
    with pytest.raises(ScenarioError, match="mann_whitney"):
        load_scenario(BAD, "slow_version", ("release.analysis.counting=argo",))
