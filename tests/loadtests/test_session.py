"""Bad input is caught before any load is sent: clear errors, no traceback needed."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest
from lt_helpers import AZ_LOSS, BASELINE, SURGE

from loadtests.session import OptionsError, build_session
from loadtests.shapes import PlanError
from loadtests.targets import TargetError
from sim import ScenarioError


def _options(**kw) -> Namespace:
    base = {"scenario": str(BASELINE), "scenario_profile": "standin", "scenario_set": [],
            "per_user_rate": 1.0, "sandbox_dir": "", "allow_host": [], "inject_faults": False,
            "faults_external": False, "run_time": None}
    return Namespace(**{**base, **kw})


@pytest.fixture()
def sandbox_dir(tmp_path: Path) -> str:
    tenants = {t: {"api_key": f"k-{t}"} for t in ("acme", "globex", "initech", "umbrella")}
    (tmp_path / "state.json").write_text(json.dumps(
        {"gateway_url": "http://127.0.0.1:5", "admin_url": "http://127.0.0.1:6",
         "tenants": tenants}))
    return str(tmp_path)


def test_a_good_session(sandbox_dir: str) -> None:
    session = build_session(_options(sandbox_dir=sandbox_dir, run_time=30), None)
    assert session.plan.users == 20 and session.plan.duration == 30.0
    assert session.info["profile"] == "standin" and session.target.host == "http://127.0.0.1:5"
    assert not session.faults_applied


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"scenario": ""}, OptionsError, "--scenario is required"),
    ({"scenario": "scenarios/nope.yaml"}, ScenarioError, "no such scenario file"),
    ({"scenario_profile": "prod"}, ScenarioError, "unknown profile 'prod'"),
    ({"scenario_set": ["workload.scale=0"]}, PlanError, "sends nothing"),
    ({"scenario_set": ["run.duration=banana"]}, ScenarioError, "run.duration"),
    ({"inject_faults": True, "faults_external": True}, OptionsError, "exclude each other"),
    ({"per_user_rate": -1.0}, PlanError, "per-user-rate"),
])
def test_bad_input_is_refused(sandbox_dir: str, options, error, match) -> None:
    with pytest.raises(error, match=match):
        build_session(_options(sandbox_dir=sandbox_dir, **options), None)


def test_fault_injection_needs_the_sandbox_admin_api(sandbox_dir: str, monkeypatch) -> None:
    monkeypatch.setenv("OMNISQL_ALLOWED_HOSTS", "staging.example.com")
    with pytest.raises(OptionsError, match="admin API"):
        build_session(_options(scenario=str(AZ_LOSS), sandbox_dir=sandbox_dir,
                               inject_faults=True), "https://staging.example.com")
    with pytest.raises(TargetError, match="allowlist"):
        build_session(_options(sandbox_dir=sandbox_dir), "http://10.0.0.8:80")
    injected = build_session(_options(scenario=str(AZ_LOSS), sandbox_dir=sandbox_dir,
                                      inject_faults=True), None)
    assert injected.faults_applied and len(injected.actions) == 1


def test_a_surge_is_applied_by_the_load_itself(sandbox_dir: str) -> None:
    surge = build_session(_options(sandbox_dir=sandbox_dir, scenario_set=[SURGE]), None)
    assert surge.faults_applied and surge.actions == []
    assert set(surge.plan.kinds) == {"normal", "noisy"}
    az = build_session(_options(scenario=str(AZ_LOSS), sandbox_dir=sandbox_dir), None)
    assert not az.faults_applied
    external = build_session(_options(scenario=str(AZ_LOSS), sandbox_dir=sandbox_dir,
                                      faults_external=True), None)
    assert external.faults_applied and external.actions  # planned, but not ours to run


def test_a_worker_clock_starts_at_the_masters_start(sandbox_dir: str) -> None:
    import time

    session = build_session(_options(sandbox_dir=sandbox_dir), None)
    assert session.now() == 0.0
    master_start = time.time() - 0.8  # the spawn message arrived 0.8 s after the start
    session.start(master_start)
    assert 0.8 <= session.now() < 1.5
    # summary.json's started_at is run time 0 on the wall clock: the master's start
    assert abs(session.info["started_at"] - master_start) < 0.01


def test_a_fault_the_sandbox_cannot_inject_is_refused_only_when_injecting(
        sandbox_dir: str) -> None:
    """gray_zone_ejected's gray_failure has no fault-API call: a plain load test of that
    scenario runs (the faults are someone else's, or none), --inject-faults is refused."""
    from loadtests.faults import FaultPlanError

    gray = str(Path(BASELINE).parent / "gray_zone_ejected.yaml")
    session = build_session(_options(scenario=gray, scenario_profile=None,
                                     sandbox_dir=sandbox_dir, run_time=30), None)
    assert session.actions == [] and not session.faults_applied
    with pytest.raises(FaultPlanError, match="gray_failure"):
        build_session(_options(scenario=gray, scenario_profile=None, sandbox_dir=sandbox_dir,
                               run_time=30, inject_faults=True), None)


def test_a_region_loss_is_injected_through_the_fault_api(sandbox_dir: str) -> None:
    """Issue 18: the stand-in acts a region loss out, so --inject-faults replays it."""
    from loadtests.faults import REGION_LOSS

    regional = str(Path(BASELINE).parent / "regional_failover.yaml")
    session = build_session(_options(scenario=regional, sandbox_dir=sandbox_dir,
                                     inject_faults=True), None)
    assert [(a.at, a.path) for a in session.actions] == [(300.0, REGION_LOSS)]


def test_a_blue_green_release_is_applied_only_when_injected(sandbox_dir: str) -> None:
    bg = str(Path(BASELINE).parent / "blue_green_cutover.yaml")
    plain = build_session(_options(scenario=bg, sandbox_dir=sandbox_dir), None)
    assert not plain.faults_applied
    injected = build_session(_options(scenario=bg, sandbox_dir=sandbox_dir,
                                      inject_faults=True), None)
    assert injected.faults_applied
    assert [a.path for a in injected.actions] == ["/admin/release/cutover"]
