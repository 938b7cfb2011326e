"""Unit tests of the extension: no sandbox, no network."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed
from chaosomnisql import discover
from chaosomnisql.load import BackgroundLoad, LoadPlan, TenantLoad, plan_from_scenario
from chaosomnisql.settings import api_keys, check_url, endpoints
from chaosomnisql.slo import (
    exceeds_error_budget,
    exceeds_latency_target,
    recovery_time,
    slo_failures,
)
from chaosomnisql.verdict import measured, verdict

from labcore.workload import key_sql
from sim import read_scenario

SLO = SimpleNamespace(error_rate=0.01, latency_p95=1.5)


# ----------------------------------------------------------------- RTO and SLO


def test_recovery_time_is_the_start_of_the_first_sustained_good_stretch() -> None:
    assert recovery_time([True, True, True], window=2, sustain=6) == 0
    assert recovery_time([False, False, True, True, True], window=2, sustain=6) == 4
    # a relapse restarts the stretch
    assert recovery_time([False, True, False, True, True, True], window=2, sustain=6) == 6
    assert recovery_time([False, True, True], window=2, sustain=6) is None
    assert recovery_time([], window=2, sustain=6) is None


def test_slo_failures_uses_the_scenario_thresholds_and_needs_traffic() -> None:
    ok = {"requests": 100, "error_rate": 0.01, "latency_p95": 1.5}
    assert slo_failures(ok, SLO) == []
    assert slo_failures({**ok, "error_rate": 0.011}, SLO) != []
    assert slo_failures({**ok, "latency_p95": None}, SLO) != []  # a missing P95 never passes
    assert slo_failures({**ok, "requests": 0}, SLO) != []
    by_tenant = {"by_tenant": {"acme": ok, "umbrella": {**ok, "error_rate": 0.9}}}
    assert slo_failures(by_tenant, SLO, ["acme"]) == []
    assert slo_failures(by_tenant, SLO, ["acme", "umbrella"]) == [
        "umbrella: error_rate 0.9000 > 0.01"]


def test_the_gate_needs_evidence_that_the_error_budget_is_exceeded() -> None:
    # One background error in 80 requests reads 1.25% but is what a 1% budget gives by chance
    # 55% of the time; three or more have probability 4.7%: the gate fails from there.
    assert not exceeds_error_budget(1, 80, 0.01, confidence=0.95)
    assert not exceeds_error_budget(2, 80, 0.01, confidence=0.95)
    assert exceeds_error_budget(3, 80, 0.01, confidence=0.95)
    assert exceeds_error_budget(16, 80, 0.01, confidence=0.95)  # a real outage fails at once
    assert exceeds_error_budget(1, 80, 0.01)  # without confidence: the point rule
    stats = {"requests": 80, "errors": 1, "error_rate": 1 / 80, "latency_p95": 0.5}
    assert slo_failures(stats, SLO) != []
    assert slo_failures(stats, SLO, confidence=0.95) == []
    assert slo_failures({**stats, "errors": 3, "error_rate": 3 / 80}, SLO, confidence=0.95) == [
        "all: error_rate 0.0375 > 0.01 at 95% confidence"]
    # without the count of slow requests, the P95 is a point rule
    assert slo_failures({**stats, "latency_p95": 1.6}, SLO, confidence=0.95) != []


def test_the_gate_needs_evidence_that_the_p95_target_is_missed() -> None:
    # CI, 19:09: initech's 31 requests read a P95 of 1.70 s against 1.5 s before anything was
    # injected: two slow requests, 6.5 %, which a P95 of exactly 1.5 s gives with probability
    # 46 %. Five or more (p = 1.9 %) fail the gate; the point rule still judges windows.
    stats = {"requests": 31, "errors": 0, "error_rate": 0.0, "latency_p95": 1.70, "slow": 2}
    assert slo_failures(stats, SLO) != []
    assert slo_failures(stats, SLO, confidence=0.95) == []
    assert not exceeds_latency_target(4, 31, 0.95)
    assert exceeds_latency_target(5, 31, 0.95)
    assert slo_failures({**stats, "latency_p95": 3.2, "slow": 5}, SLO, confidence=0.95) == [
        "all: latency_p95 3.2 > 1.5s at 95% confidence (5 slower)"]
    assert exceeds_latency_target(31, 31, 0.95)  # a real slowdown fails at once
    assert slo_failures({**stats, "latency_p95": None, "slow": 0}, SLO, confidence=0.95) != []


# ----------------------------------------------------------------- the verdict


def _entry(func: str, status: str = "succeeded", output: object = None) -> dict:
    return {"activity": {"name": func, "provider": {"func": func, "arguments": {}}},
            "status": status, "output": output}


def _journal(**kw: object) -> dict:
    base = {"status": "completed", "deviated": False,
            "steady_states": {"before": {"steady_state_met": True}, "after":
                              {"steady_state_met": True}},
            "run": [_entry("lose_zone"),
                    _entry("measure_recovery", output={"measured": {"rto_seconds": 10.0}})],
            "rollbacks": [_entry("restore_zone")]}
    return {**base, **kw}


CHECKS = read_scenario("scenarios/az_loss.yaml", profile="standin").scenario.checks


def test_a_clean_journal_passes() -> None:
    assert verdict(_journal(), CHECKS) == []
    assert measured(_journal()) == {"rto_seconds": 10.0}


def test_chaos_toolkits_false_greens_fail() -> None:
    # An action raised: Chaos Toolkit still says "completed" and exits 0.
    raised = _journal(run=[{**_entry("lose_zone", "failed"),
                            "exception": ["Traceback...\n", "ActivityFailed: HTTP 404\n"]}])
    assert any("lose_zone" in r and "HTTP 404" in r for r in verdict(raised, CHECKS))
    # The before-hypothesis failed and the method was skipped.
    skipped = _journal(steady_states={"before": {"steady_state_met": False}, "after": None},
                       run=[])
    assert any("BEFORE" in r for r in verdict(skipped, CHECKS))
    assert verdict(_journal(deviated=True), CHECKS)
    assert verdict(_journal(rollbacks=[_entry("restore_zone", "failed")]), CHECKS)
    assert verdict(_journal(status="interrupted"), CHECKS)


def test_measured_checks_use_the_scenario_targets() -> None:
    slow = _journal(run=[_entry("measure_recovery", output={"measured": {"rto_seconds": 901.0}})])
    assert any("RTO under 15 min" in r for r in verdict(slow, CHECKS))
    never = _journal(run=[_entry("measure_recovery", output={"measured": {"rto_seconds": None}})])
    assert any("rto_seconds = None" in r for r in verdict(never, CHECKS))


def test_a_check_is_judged_over_its_own_scope_never_on_the_whole_window() -> None:
    """The flood's victims' P95 ``over: outside_recovery`` cannot be judged on the whole
    fault window's value the traffic probe measures: without the run's window facts
    (which measure it over its own scope) it is not measured; the summary shows that
    scope and the simulator's prediction for the same key."""
    from chaosomnisql.summary import build_summary, render

    source = read_scenario("scenarios/rate_limit_flood.yaml", profile="standin")
    checks = source.scenario.checks
    scoped = [c for c in checks if c.metric == "tenants_except.umbrella.latency_p95"]
    assert scoped and scoped[0].over == "outside_recovery"
    bad = {"tenants_except.umbrella.latency_p95": 99.0, "tenants_except.umbrella.error_rate": 0.9}
    journal = _journal(run=[_entry("measure_traffic", output={"measured": bad})])
    assert not any("tenants_except.umbrella.latency_p95" in r for r in verdict(journal, checks))
    prediction = {"tenants_except.umbrella.latency_p95@outside_recovery": {
        "mean": 0.4, "ci_low": 0.3, "ci_high": 0.5}}
    summary = build_summary(journal, source, prediction)
    target = next(t for t in summary["targets"] if t["metric"] == scoped[0].metric)
    assert target["over"] == "outside_recovery" and not target["is_measured"]
    assert target["measured"] is None and "not measured by this chaos run" in target["not_measured"]
    assert target["simulator"]["mean"] == 0.4
    assert "tenants_except.umbrella.latency_p95 over outside_recovery" in render(summary)
    run_scoped = _journal(run=[_entry("measure_traffic", output={"measured": {"error_rate": 0.5}})])
    assert verdict(run_scoped, read_scenario("scenarios/baseline.yaml").scenario.checks)


# ----------------------------------------------------------------- safety


def test_allowlist_is_loopback_unless_extended() -> None:
    assert check_url("http://127.0.0.1:8080/x", {}) == "http://127.0.0.1:8080/x"
    with pytest.raises(ActivityFailed, match="not on the allowlist.*omnisql_allowed_hosts"):
        check_url("http://10.0.0.7/x", {})
    with pytest.raises(ActivityFailed):
        check_url("https://staging.omnisql.example/x", {})
    assert check_url("https://staging.omnisql.example/x",
                     {"omnisql_allowed_hosts": "127.0.0.1,staging.omnisql.example"})
    eks = {"omnisql_target": "eks", "omnisql_gateway_url": "https://gw.staging.example",
           "omnisql_admin_url": "https://admin.staging.example"}
    with pytest.raises(ActivityFailed):
        endpoints(eks)
    with pytest.raises(ActivityFailed, match="not one of"):
        endpoints({"omnisql_target": "prod"})


def test_api_keys_come_only_from_secrets() -> None:
    assert api_keys({"omnisql": {"api_keys": '{"acme": "k1"}'}}) == {"acme": "k1"}
    assert api_keys({"api_keys": '{"acme": "k1"}'}) == {"acme": "k1"}  # an activity's view
    with pytest.raises(ActivityFailed, match="OMNISQL_API_KEYS"):
        api_keys(None)
    with pytest.raises(ActivityFailed):
        api_keys({"omnisql": {"api_keys": '["k1"]'}})


# ----------------------------------------------------------------- background load


def test_load_plan_takes_the_scenarios_scaled_rates() -> None:
    scenario = read_scenario("scenarios/az_loss.yaml", profile="standin").scenario
    plan = plan_from_scenario(scenario, seconds=10, max_requests=50)
    assert {t.tenant: t.rate for t in plan.tenants} == pytest.approx(
        {"acme": 8.0, "globex": 6.0, "initech": 4.0, "umbrella": 2.0})
    assert plan.total_rate == pytest.approx(20.0)
    flood = plan_from_scenario(scenario, 10, 50, factor=10, tenants=("umbrella",))
    assert flood.total_rate == pytest.approx(20.0)
    assert key_sql("crm.accounts", 0) == "SELECT * FROM crm.accounts WHERE id = 1 LIMIT 1"


def _counting_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"rows": []})
    return httpx.MockTransport(handler)


def test_background_load_stops_at_its_request_bound() -> None:
    seen: list[httpx.Request] = []
    plan = LoadPlan((TenantLoad("acme", 2000.0, 5, (("crm.accounts", 1.0),)),), 30.0, 40)
    load = BackgroundLoad(plan, "http://127.0.0.1:9", {"acme": "k"},
                          transport=_counting_transport(seen)).start()
    report = load.wait(5)
    assert report.sent == len(seen) == 40
    assert report.by_status == {"200": 40}
    assert seen[0].headers["X-OmniSQL-User"].startswith("u")


def test_background_load_stops_at_its_time_bound() -> None:
    seen: list[httpx.Request] = []
    plan = LoadPlan((TenantLoad("acme", 50.0, 5, (("crm.accounts", 1.0),)),), 0.5, 10_000)
    start = time.monotonic()
    load = BackgroundLoad(plan, "http://127.0.0.1:9", {"acme": "k"},
                          transport=_counting_transport(seen)).start()
    report = load.wait(5)
    assert time.monotonic() - start < 2.0
    assert 5 <= report.sent <= 60  # ~25 expected at 50/s for 0.5 s


def test_stopping_a_load_early_cancels_what_is_queued() -> None:
    seen: list[httpx.Request] = []
    plan = LoadPlan((TenantLoad("acme", 50.0, 5, (("crm.accounts", 1.0),)),), 30.0, 10_000)
    load = BackgroundLoad(plan, "http://127.0.0.1:9", {"acme": "k"},
                          transport=_counting_transport(seen)).start()
    time.sleep(0.3)
    report = load.stop()
    assert not load._thread.is_alive()
    assert report.sent == len(seen) == sum(report.by_status.values()) < 100


# ----------------------------------------------------------------- the public surface


def test_discover_lists_every_activity_with_configuration_and_secrets_last() -> None:
    from chaosomnisql import actions, probes

    found = {(a["mod"], a["name"]) for a in discover()["activities"]}
    for module in (actions, probes):
        for name in module.__all__:
            assert (module.__name__, name) in found
            params = list(inspect.signature(getattr(module, name)).parameters)
            assert params[-2:] == ["configuration", "secrets"], name
            assert getattr(module, name).__doc__, name


def test_chaos_is_started_interruptible_even_when_sigint_is_ignored() -> None:
    """A background shell (``cmd &``) hands its children SIGINT ignored; the wrapper must
    still be able to stop chaos with SIGINT, or the rollbacks would never run."""
    import signal
    import subprocess
    import sys

    from chaosomnisql.cli import interruptible

    def ignored_then_interruptible() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        interruptible()

    code = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    for preexec, expected in (((lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)), "False"),
                              (ignored_then_interruptible, "True")):
        out = subprocess.run([sys.executable, "-c", code], preexec_fn=preexec,
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == expected


# ----------------------------------------------------------------- installs on its own


def test_the_extension_declares_the_lab_and_needs_no_checkout(tmp_path, monkeypatch) -> None:
    import tomllib
    from pathlib import Path

    from chaosomnisql import settings

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "chaos" / "pyproject.toml").read_text())["project"]
    assert "omnisql-reliability-lab" in project["dependencies"]
    source = "".join(p.read_text() for p in (root / "chaos" / "chaosomnisql").rglob("*.py"))
    assert "parents[" not in source
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "mine.yaml").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)
    beside = tmp_path / "exp" / "mine.yaml"
    assert settings.resolve_path("mine.yaml", str(tmp_path / "exp")) == beside
    monkeypatch.setenv("OMNISQL_EXPERIMENT_DIR", str(tmp_path / "exp"))
    assert settings.resolve_path("mine.yaml") == beside
    assert settings.resolve_path("exp/mine.yaml") == Path("exp/mine.yaml")  # from the cwd


def test_summary_shows_acknowledged_writes_lost_beside_the_rpo() -> None:
    """The az_loss journal recorded `lost 1`; the summary showed only the RPO and PASS."""
    from chaosomnisql.summary import build_summary, render

    scenario = read_scenario("scenarios/regional_failover.yaml", profile="standin")
    lost = {"last_acknowledged": 812, "max_visible": 811, "lost": 1, "rpo_seconds": 0.03,
            "measured": {"rpo_seconds": 0.03}}
    journal = _journal(run=[_entry("lose_zone"), _entry("acknowledged_writes_lost",
                                                        output=lost)])
    text = render(build_summary(journal, scenario, None))
    rpo_lines = [i for i, line in enumerate(text.splitlines()) if "rpo_seconds" in line]
    assert rpo_lines, text
    after = text.splitlines()[rpo_lines[0] + 1]
    assert "acknowledged writes lost: 1 (last acknowledged 812, max visible" in after, text
    failed = _journal(run=[_entry("acknowledged_writes_lost", "failed")])
    assert "acknowledged writes lost: not measured" in render(build_summary(failed, scenario,
                                                                            None))


def test_the_wrappers_default_timeout_covers_the_scenarios_whole_run() -> None:
    """The run lasts the scenario's run.duration on its timeline (the faults at their
    scenario time, the load until the end), then the rollbacks: the default timeout is
    that length plus the margin (the old one, warm-up + RTO target + sustain, stopped
    auth_failure's 900 s run at 750 s: issue 18), short mode's compressed length too."""
    from chaosomnisql.cli import SHORT_MODE, TIMEOUT_MARGIN, default_timeout

    auth = read_scenario("scenarios/auth_failure.yaml", profile="standin").scenario
    assert auth.run.duration == 900.0
    assert default_timeout(auth, {}) == 900 + TIMEOUT_MARGIN
    flood = read_scenario("scenarios/rate_limit_flood.yaml", profile="standin").scenario
    assert default_timeout(flood, {}) == 720 + TIMEOUT_MARGIN
    assert default_timeout(flood, {"OMNISQL_LOAD_SECONDS": "400"}) == 400 + TIMEOUT_MARGIN
    assert default_timeout(auth, SHORT_MODE) == 80 + TIMEOUT_MARGIN


def test_short_mode_fits_the_run_to_the_methods_longest_wait() -> None:
    """Short mode's run ends when the method's longest wait after the last injection is
    over (recovery timeout + sustain, or a canary's decision wait), plus a tail: CI spent
    21 s of every non-canary run in an 80 s run whose probe was done at 53 s."""
    from chaosomnisql.canary import GRACE
    from chaosomnisql.cli import SHORT_MODE, SHORT_TAIL, short_mode

    az = read_scenario("scenarios/az_loss.yaml", profile="standin").scenario
    recovery = float(SHORT_MODE["OMNISQL_RECOVERY_TIMEOUT"]) + float(SHORT_MODE["OMNISQL_SUSTAIN"])
    assert float(short_mode(az)["OMNISQL_LOAD_SECONDS"]) == 15 + recovery + SHORT_TAIL == 59
    canary = read_scenario("scenarios/canary_bad_release.yaml", profile="standin").scenario
    decision = float(SHORT_MODE["OMNISQL_CANARY_TIMEOUT"]) + GRACE
    assert float(short_mode(canary)["OMNISQL_LOAD_SECONDS"]) == min(15 + decision + SHORT_TAIL, 80)
    assert short_mode(None) == SHORT_MODE  # no scenario: the longest short run
    assert {k: v for k, v in short_mode(az).items() if k != "OMNISQL_LOAD_SECONDS"} == {
        k: v for k, v in SHORT_MODE.items() if k != "OMNISQL_LOAD_SECONDS"}


def test_every_wait_of_the_method_ends_within_the_wrappers_timeout() -> None:
    """Every experiment's measure-recovery probe watches from its fault's time for the RTO
    target of the check it measures plus the sustain, cut at the run's end; the canary's
    decision is waited for within the run too: both end before the wrapper's default
    timeout takes its margin. rate_limit_flood's probe measures
    ``tenants_except.umbrella.rto_seconds``: it once waited 900 s (only a check on plain
    ``rto_seconds`` counted) inside a 650 s timeout (13:20 UTC)."""
    import yaml
    from chaosomnisql.canary import GRACE, scenario_limit
    from chaosomnisql.cli import SHORT_MODE, TIMEOUT_MARGIN, default_timeout, short_mode
    from chaosomnisql.cutover import GRACE as CUTOVER_GRACE
    from chaosomnisql.slo import rto_target
    from chaosomnisql.timeline import scenario_timeline

    from labcore.scenario import BlueGreen, Canary

    for path in sorted(Path("chaos/experiments").glob("*.yaml")):
        experiment = yaml.safe_load(path.read_text())
        scenario = read_scenario(experiment["configuration"]["omnisql_scenario"],
                                 profile="standin").scenario
        short = short_mode(scenario)
        for env in ({}, short):
            timeline = scenario_timeline(scenario, lambda k, e=env: e.get(f"OMNISQL_{k.upper()}"))
            assert timeline.duration <= default_timeout(scenario, env) - TIMEOUT_MARGIN
            assert timeline.hypothesis_at < timeline.fault_at(0) < timeline.duration, path
        at = scenario_timeline(scenario, lambda k: None).fault_at(0)
        for activity in experiment["method"]:
            if activity["provider"].get("func") != "measure_recovery":
                continue
            metric = activity["provider"].get("arguments", {}).get("metric", "rto_seconds")
            wait = min(rto_target(scenario, metric) + scenario.slo.sustain,
                       scenario.run.duration - at)
            assert at + wait <= default_timeout(scenario, {}) - TIMEOUT_MARGIN, path.name
        if isinstance(scenario.release, Canary):  # the decision's wait fits the run, short too
            assert at + scenario_limit(scenario) + GRACE <= scenario.run.duration
            assert (float(SHORT_MODE["OMNISQL_FAULT_AT"]) + GRACE
                    + float(SHORT_MODE["OMNISQL_CANARY_TIMEOUT"])
                    <= float(short["OMNISQL_LOAD_SECONDS"]))
        if isinstance(scenario.release, BlueGreen):  # so does the drain's
            drain = scenario.release.drain_timeout + CUTOVER_GRACE
            assert at + drain <= scenario.run.duration
            assert (float(SHORT_MODE["OMNISQL_FAULT_AT"]) + drain
                    <= float(short["OMNISQL_LOAD_SECONDS"])), path.name
        # the recovery probe's short wait fits the short run
        wait = sum(float(SHORT_MODE[f"OMNISQL_{k}"]) for k in ("RECOVERY_TIMEOUT", "SUSTAIN"))
        assert (float(SHORT_MODE["OMNISQL_FAULT_AT"]) + wait
                <= float(short["OMNISQL_LOAD_SECONDS"])), path.name
    flood = read_scenario("scenarios/rate_limit_flood.yaml", profile="standin").scenario
    assert rto_target(flood, "tenants_except.umbrella.rto_seconds") == 300.0
    assert rto_target(flood) == 300.0
