"""Chaos reads the stand-in's connector counters window by window (no sandbox here): the
herd check of cache_stampede (``incident.connector.fetches_per_key_peak``) and the incident's
fetches per key are computed from the chaos run's window facts by labcore's metric code."""

from __future__ import annotations

from typing import Any

from chaosomnisql.counters import ConnectorPoller, pool_delta
from chaosomnisql.ledger import FaultRecord
from chaosomnisql.verdict import judge_checks
from chaosomnisql.windows import RunWindows, measured_metrics

from labcore.registry import not_observed_reason
from sim import read_scenario

STAMPEDE = read_scenario("scenarios/cache_stampede.yaml", profile="standin").scenario
W = 10.0


def _run(readings: list[dict[str, Any] | None]) -> tuple[RunWindows, ConnectorPoller]:
    """Windows of steady, fast answers; the connector readings given window by window."""
    windows = RunWindows(STAMPEDE, window=W, warmup=20.0, sustain=20.0, origin=0.0)
    for k in range(len(readings)):
        for _ in range(50):
            windows.request(k * W + W / 2, "acme", 0.05, "ok")
    answers = iter(readings)

    def stats(seconds: int) -> dict[str, Any]:
        assert seconds == 10
        reading = next(answers)
        return {"requests": 50} if reading is None else {"connector": reading}

    poller = ConnectorPoller(windows, stats)
    for k in range(len(readings)):
        poller.read(k)
    return windows, poller


def test_chaos_observes_the_incidents_fetches_per_key() -> None:
    for metric in ("incident.connector.fetches_per_key",
                   "incident.connector.fetches_per_key_peak"):
        assert not_observed_reason(metric, "run", "chaos") is None


def test_the_herd_is_the_worst_incident_window() -> None:
    quiet = {"fetches": 10, "calls": 10, "keys": 10}
    herd = {"fetches": 60, "calls": 12, "keys": 20}  # 3 fetches per key
    after = {"fetches": 15, "calls": 15, "keys": 10}  # 1.5
    windows, poller = _run([quiet] * 4 + [herd, after] + [quiet] * 4)
    assert poller.seen
    flush = FaultRecord("cache_flush", "cache", started_at=41.0, wall_started=0.0,
                        restored_at=None)
    facts = windows.facts([flush], elapsed=100.0)
    assert facts is not None
    got = measured_metrics(facts, STAMPEDE.checks)
    # A flush covers its window (the 5th): the herd window alone, as the simulator reads it.
    assert got["incident.connector.fetches_per_key_peak"] == 3.0
    journal = {"status": "completed", "run": [], "omnisql_windows": {"measured": got}}
    result = next(r for r in judge_checks(journal, STAMPEDE.checks).results
                  if r.metric == "incident.connector.fetches_per_key_peak")
    assert result.passed is False  # 3.0 > 1.2: the herd check fails, as it should


def test_a_target_without_connector_counters_records_none() -> None:
    windows, poller = _run([None] * 6)
    assert not poller.seen
    facts = windows.facts([], elapsed=60.0)
    assert facts is not None and "connector.keys" not in list(facts.arrays["counter_names"])


def test_a_failed_reading_leaves_that_window_without_counters() -> None:
    windows = RunWindows(STAMPEDE, window=W, warmup=20.0, sustain=20.0, origin=0.0)

    def broken(seconds: int) -> dict[str, Any]:
        raise OSError("connection refused")

    poller = ConnectorPoller(windows, broken)
    poller.read(0)
    assert (poller.errors, poller.seen) == (1, False)


def test_without_counters_the_herd_check_is_not_measured_rather_than_failed() -> None:
    from chaosomnisql import ledger
    from chaosomnisql.controls.load import window_report

    windows, _ = _run([None] * 8)
    ledger.reset()
    ledger.LEDGER.faults.append(FaultRecord("cache_flush", "cache", started_at=41.0,
                                            wall_started=0.0))
    key = "incident.connector.fetches_per_key_peak"
    assert window_report(windows, {}, connector_seen=True)["measured"][key] is None
    report = window_report(windows, {}, connector_seen=False)
    ledger.reset()
    assert key not in report["measured"] and "incident.latency_p95" in report["measured"]
    journal = {"status": "completed", "run": [], "omnisql_windows": report}
    skipped = {s["metric"] for s in judge_checks(journal, STAMPEDE.checks).not_measured}
    assert key in skipped


MISSING_SECRETS = read_scenario("scenarios/regional_failover_missing_secrets.yaml",
                                profile="standin").scenario


def test_chaos_observes_the_providers_401s_and_429s_at_every_scope() -> None:
    for metric in ("connector.unauthorized", "connector.rate_limited",
                   "incident.connector.rate_limited"):
        assert not_observed_reason(metric, "run", "chaos") is None
    assert not_observed_reason("connector.unauthorized", "after_recovery", "chaos") is None
    assert not_observed_reason("connector.unauthorized", "run", "locust") is not None


def test_401s_and_429s_are_counted_per_window_and_tenant() -> None:
    quiet = {"fetches": 10, "calls": 10, "keys": 10, "unauthorized": {}, "rate_limited": {}}
    revoked = {**quiet, "unauthorized": {"acme": 7, "globex": 3},
               "rate_limited": {"umbrella": 2}}
    windows, _ = _run([quiet] * 4 + [revoked] * 2 + [quiet] * 2)
    facts = windows.facts([], elapsed=80.0)
    assert facts is not None
    got = measured_metrics(facts, STAMPEDE.checks)
    assert got["requests"] == 50 * 6  # the 2 warm-up windows are not measured
    from labcore.checks import scoped_metrics

    metrics = scoped_metrics(facts, ())
    assert metrics["connector.unauthorized"] == 20.0  # 2 windows x (7 + 3)
    assert metrics["connector.rate_limited"] == 4.0
    assert metrics["tenant.umbrella.rate_limited"] == 4.0


def test_auth_failures_after_a_failover_are_judged_from_the_counters() -> None:
    (check,) = [c for c in MISSING_SECRETS.checks if c.metric == "connector.unauthorized"]
    windows = RunWindows(MISSING_SECRETS, window=W, warmup=20.0, sustain=20.0, origin=0.0)
    for k in range(8):
        for _ in range(50):
            windows.request(k * W + W / 2, "acme", 0.05, "ok")
    answers = iter([{"connector": {"unauthorized": {"acme": 5 if k == 6 else 0}}}
                    for k in range(8)])
    poller = ConnectorPoller(windows, lambda seconds: next(answers))
    for k in range(8):
        poller.read(k)
    facts = windows.facts([], elapsed=80.0)
    assert facts is not None
    got = measured_metrics(facts, MISSING_SECRETS.checks)
    journal = {"status": "completed", "run": [], "omnisql_windows": {"measured": got}}
    result = next(r for r in judge_checks(journal, MISSING_SECRETS.checks).results
                  if r.metric == check.metric)
    assert result.observed == 5.0 and result.passed is False


BASELINE = read_scenario("scenarios/baseline.yaml", profile="standin").scenario


def _pool(workers: int | None, busy: float, capacity: float, started: int = 0,
          **more: float) -> dict[str, Any]:
    return {"workers": workers, "busy_seconds": busy, "capacity_seconds": capacity,
            "started": started, **more}


def test_chaos_observes_the_engines_utilization_at_every_scope() -> None:
    for scope in ("run", "before_fault", "after_recovery"):
        assert not_observed_reason("engine.utilization", scope, "chaos") is None
    assert not_observed_reason("engine.queue_wait_mean", "run", "chaos") is not None
    assert not_observed_reason("control_plane.utilization", "before_fault", "chaos") is None


def test_a_pools_window_is_its_difference_since_the_last_reading() -> None:
    assert pool_delta(_pool(2, 5.0, 20.0, 10), None) is None  # the first: a baseline
    got = pool_delta(_pool(2, 8.0, 40.0, 25), _pool(2, 5.0, 20.0, 10))
    assert got is not None
    assert (got["busy_area"], got["capacity_area"], got["started"]) == (3.0, 20.0, 15.0)
    restarted = pool_delta(_pool(2, 1.0, 6.0, 3), _pool(2, 5.0, 20.0, 10))
    assert restarted is not None and restarted["busy_area"] == 1.0  # since its restart
    assert pool_delta(_pool(None, 8.0, 0.0), _pool(None, 5.0, 0.0)) is None  # no limit


def test_engine_utilization_is_busy_over_available_slot_seconds_of_the_live_zones() -> None:
    """Two zones' engines of 2 slots, read every 10 s: 5 and 3 slot-seconds busy of 20 each
    per window (20%); then az-b is lost (absent), az-a alone is 10 of 20 (50%)."""
    windows = RunWindows(BASELINE, window=W, warmup=10.0, sustain=20.0, origin=0.0)
    for k in range(5):
        for _ in range(20):
            windows.request(k * W + W / 2, "acme", 0.05, "ok")
    totals = {"engine-az-a": [0.0, 0.0], "engine-az-b": [0.0, 0.0]}
    readings = []
    for k in range(5):
        pools = {}
        for name, (busy, cap) in totals.items():
            if name == "engine-az-b" and k >= 3:
                continue  # lost from the 4th window on
            step = (10.0 if k >= 3 else 5.0) if name == "engine-az-a" else 3.0
            totals[name] = [busy + step, cap + 20.0]
            pools[name] = _pool(2, *totals[name])
        readings.append({"engine_pools": pools})
    answers = iter(readings)
    poller = ConnectorPoller(windows, lambda seconds: next(answers))
    for k in range(5):
        poller.read(k)
    facts = windows.facts([], elapsed=50.0)
    assert facts is not None and list(facts.arrays["tier_names"]) == ["engine"]
    from labcore.checks import scoped_metrics

    # windows 1-4 (window 0: the baseline, in the warm-up): (8+8+10+10) / (40+40+20+20)
    assert scoped_metrics(facts, ())["engine.utilization"] == 36.0 / 120.0
    (check,) = [c for c in BASELINE.checks if c.metric == "engine.utilization"]
    got = measured_metrics(facts, BASELINE.checks)
    journal = {"status": "completed", "run": [], "omnisql_windows": {"measured": got}}
    result = next(r for r in judge_checks(journal, BASELINE.checks).results
                  if r.metric == check.metric)
    assert result.observed == 0.3 and result.passed is True  # below 66.7%
