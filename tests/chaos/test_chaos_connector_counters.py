"""Chaos reads the stand-in's connector counters window by window (no sandbox here): the
herd check of cache_stampede (``incident.connector.fetches_per_key_peak``) and the incident's
fetches per key are computed from the chaos run's window facts by labcore's metric code."""

from __future__ import annotations

from typing import Any

from chaosomnisql.counters import ConnectorPoller
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
