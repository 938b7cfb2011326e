"""The scenario's fault timeline as sandbox fault-API calls, and its runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from lt_helpers import AZ_LOSS, SURGE, baseline

from loadtests.faults import Action, FaultPlanError, FaultRunner, fault_actions
from sim import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_az_loss_is_one_call_at_its_time() -> None:
    scenario = load_scenario(AZ_LOSS, "standin")
    assert fault_actions(scenario) == [Action(120.0, "POST", "/faults/az/az-a/lose")]
    assert fault_actions(scenario, until=100.0) == []


def test_every_expressible_kind_and_its_undo() -> None:
    scenario = baseline(
        "faults=[{kind: az_loss, zone: az-b, at: 5s, duration: 10s},"
        " {kind: provider_outage, provider: tickets, at: 1s, duration: 2s},"
        " {kind: latency_injection, target: 'provider:crm', at: 2s, duration: 3s, factor: 3},"
        " {kind: cache_flush, at: 4s, tenant: acme},"
        " {kind: token_revocation, provider: crm, at: 6s, fraction: 50%},"
        " {kind: traffic_surge, tenant: umbrella, at: 7s, duration: 5s, factor: 10}]")
    calls = [(a.at, a.method, a.path) for a in fault_actions(scenario)]
    assert calls == [
        (1.0, "POST", "/faults/provider/tickets"), (2.0, "POST", "/faults/provider/crm"),
        (3.0, "DELETE", "/faults/provider/tickets"), (4.0, "POST", "/admin/cache/invalidate"),
        (5.0, "POST", "/faults/az/az-b/lose"), (5.0, "DELETE", "/faults/provider/crm"),
        (6.0, "POST", "/faults/tokens/expire"), (15.0, "POST", "/faults/az/az-b/restore"),
    ]
    bodies = {a.path: a.body for a in fault_actions(scenario) if a.method == "POST"}
    mean_ms = scenario.topology.providers["crm"].latency.mean * 1e3
    assert bodies["/faults/provider/crm"] == {"latency_ms": pytest.approx(2 * mean_ms)}
    assert bodies["/admin/cache/invalidate"] == {"tenant": "acme"}
    assert bodies["/faults/tokens/expire"] == {"provider": "crm", "fraction": 0.5}
    assert fault_actions(baseline(SURGE)) == []  # the load plan sends the surge


def test_the_operators_timed_mitigations_are_calls_at_their_time() -> None:
    """SOP-101's cap 2 minutes into the flood, lifted after its 10 minutes, and SOP-103's
    paced refresh: the calls the chaos experiments make; a mitigation in force from the
    start is the applied scenario's, not a call."""
    flood = load_scenario(SCENARIOS / "rate_limit_flood_mitigated.yaml", "standin")
    start, lifted = flood.faults[0].at + 120.0, flood.mitigations[0].duration
    assert lifted == 300.0  # the standin profile's 5 minutes (10 at full size)
    cap = {"tenant": "umbrella", "user": "*"}
    assert [a for a in fault_actions(flood) if a.path == "/admin/caps"] == [
        Action(start, "POST", "/admin/caps", {**cap, "max_concurrency": 1}),
        Action(start + lifted, "POST", "/admin/caps", {**cap, "max_concurrency": None})]
    auth = load_scenario(SCENARIOS / "auth_failure_mitigated.yaml", "standin")
    (refresh,) = [a for a in fault_actions(auth) if a.path == "/admin/tokens/refresh"]
    m = auth.mitigations[0]
    assert refresh == Action(auth.faults[0].at + m.operator_delay, "POST",
                             "/admin/tokens/refresh", {"provider": "crm", "rate": m.rate,
                                                       "tokens_per_tenant": m.tokens_per_tenant})
    at_start = baseline("mitigations=[{kind: user_cap, tenant: umbrella, max_concurrency: 2}]")
    assert fault_actions(at_start) == []
    rotating = baseline("faults=[{kind: token_revocation, provider: crm, at: 5s}]",
                        "mitigations=[{kind: token_refresh, provider: crm, rate: 5/s, "
                        "rotate_secret: true, after_fault: 0, operator_delay: 5s}]")
    with pytest.raises(FaultPlanError, match="rotate_secret"):
        fault_actions(rotating)


def test_engine_latency_cannot_be_injected_into_the_sandbox() -> None:
    scenario = baseline("faults=[{kind: latency_injection, target: engine, at: 5s, "
                        "duration: 5s, factor: 2}]")
    with pytest.raises(FaultPlanError, match="engine"):
        fault_actions(scenario)


def test_runner_fires_on_the_clock_and_resets_only_after_injecting() -> None:
    clock, calls = [0.0], []

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def call(base: str, action: Action) -> int:
        calls.append((clock[0], action.method, base + action.path))
        return 200

    actions = [Action(2.0, "POST", "/faults/az/az-a/lose"), Action(5.0, "POST", "/x")]
    runner = FaultRunner("http://127.0.0.1:1", actions, call=call, sleep=sleep)
    assert runner.reset() is None and calls == []
    runner.run(lambda: clock[0])
    assert calls == [(2.0, "POST", "http://127.0.0.1:1/faults/az/az-a/lose"),
                     (5.0, "POST", "http://127.0.0.1:1/x")]
    assert runner.reset() == 200 and calls[-1][2].endswith("/faults/reset")


def test_a_refused_fault_call_is_recorded_as_failed() -> None:
    def call(base: str, action: Action) -> int:
        if action.path == "/faults/reset":
            raise ConnectionRefusedError("admin down")
        return 404 if action.path == "/bad" else 200

    actions = [Action(0.0, "POST", "/ok"), Action(0.0, "POST", "/bad")]
    runner = FaultRunner("http://127.0.0.1:1", actions, call=call, sleep=lambda s: None)
    runner.run(lambda: 0.0)
    assert [a.path for a in runner.failed] == ["/bad"]
    assert runner.reset() == 0


def test_the_reset_renews_the_tokens_the_test_revoked() -> None:
    """The fault API's reset does not refresh tokens: the runner asks for a bulk refresh of
    every provider it revoked, so the next run does not start with 401s."""
    calls: list[tuple[str, dict | None]] = []

    def call(base: str, action: Action) -> int:
        calls.append((action.path, action.body))
        return 200

    actions = [Action(1.0, "POST", "/faults/tokens/expire", {"provider": "crm", "fraction": 1.0}),
               Action(2.0, "POST", "/faults/az/az-a/lose")]
    runner = FaultRunner("http://127.0.0.1:1", actions, call=call, sleep=lambda s: None)
    runner.run(lambda: 0.0)
    assert runner.reset() == 200
    assert calls[2:] == [("/faults/reset", None), ("/admin/tokens/refresh", {"provider": "crm"})]


def test_a_failed_token_refresh_fails_the_reset() -> None:
    def call(base: str, action: Action) -> int:
        return 503 if action.path == "/admin/tokens/refresh" else 200

    actions = [Action(0.0, "POST", "/faults/tokens/expire", {"provider": "crm", "fraction": 1.0})]
    runner = FaultRunner("http://127.0.0.1:1", actions, call=call, sleep=lambda s: None)
    runner.run(lambda: 0.0)
    assert runner.reset() == 503
    assert [(a.path, code) for a, code in runner.undone] == [
        ("/faults/reset", 200), ("/admin/tokens/refresh", 503)]


def test_a_region_loss_is_one_call_and_its_undo_rebuilds_the_old_primary() -> None:
    """Issue 18: the stand-in acts the region loss out (its failover promotes the replica);
    the end resets and rebuilds the old primary, and "nothing to rebuild" (a test that ended
    before the promotion: 409) is not a failed undo, while any other refusal is."""
    regional = load_scenario(SCENARIOS / "regional_failover.yaml", "standin")
    (lose,) = fault_actions(regional)
    assert (lose.at, lose.method, lose.path) == (300.0, "POST", "/faults/region/lose")
    for rebuild, worst in ((409, 200), (503, 503)):
        def call(base: str, action: Action, code: int = rebuild) -> int:
            return code if action.path == "/admin/metadata/rebuild" else 200

        runner = FaultRunner("http://127.0.0.1:1", [lose], call=call, sleep=lambda s: None)
        runner.run(lambda: 300.0)
        assert runner.reset() == worst
        assert [a.path for a, _ in runner.undone] == ["/faults/reset", "/admin/metadata/rebuild"]


def test_a_blue_green_release_is_one_cutover_and_its_facts_are_read_before_the_reset() -> None:
    """Issue 18: the scenario's release is replayed at ``release.at``; its ``cutover.*``
    facts are the stand-in's account, read before the reset (which ends the release)."""
    scenario = load_scenario(SCENARIOS / "blue_green_cutover_short_drain.yaml", "standin")
    (cut,) = fault_actions(scenario)
    assert cut == Action(120.0, "POST", "/admin/release/cutover",
                         {"version": "v2", "drain_timeout": 0.5})
    assert fault_actions(scenario, until=120.0) == []
    order: list[str] = []
    account = {"phase": "done", "inflight_at_switch": 3, "dropped_requests": 1,
               "drain_seconds": None}

    def call(base: str, action: Action) -> int:
        order.append(action.path)
        return 200

    def read(path: str) -> dict:
        order.append(f"GET {path}")
        return account

    runner = FaultRunner("http://127.0.0.1:1", [cut], call=call, sleep=lambda s: None,
                         read=read)
    assert runner.cutover_facts() == {}  # nothing cut over yet
    runner.run(lambda: 120.0)
    assert runner.cutover_facts() == {"cutover.inflight_at_switch": 3.0,
                                      "cutover.dropped_requests": 1.0,
                                      "cutover.drain_seconds": None}
    runner.reset()
    assert order == ["/admin/release/cutover", "GET /admin/release", "/faults/reset"]
    account["phase"] = "draining"  # the run ended before the drain: not a measurement
    assert runner.cutover_facts() == {}


def test_a_refused_cutover_measures_nothing() -> None:
    scenario = load_scenario(SCENARIOS / "blue_green_cutover.yaml", "standin")
    runner = FaultRunner("http://127.0.0.1:1", fault_actions(scenario),
                         call=lambda base, action: 409, sleep=lambda s: None,
                         read=lambda path: {"phase": "done"})
    runner.run(lambda: 120.0)
    assert runner.cutover_facts() == {} and runner.failed
