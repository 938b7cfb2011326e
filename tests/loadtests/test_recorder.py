"""The client recorder: outcomes, windows, worker merge, and metrics via labcore.metrics."""

from __future__ import annotations

import numpy as np
import pytest
from lt_helpers import baseline

from labcore.metrics import compute_metrics, window_table
from loadtests.recorder import ClientRecorder, classify, fault_marks

TENANTS = ("acme", "globex", "initech", "umbrella")


@pytest.mark.parametrize(("status", "code", "outcome"), [
    (200, None, "ok"),
    (429, "CONCURRENCY_CAP", "capped"),
    (429, "RATE_LIMIT_EXHAUSTED", "rate_limited"),
    (401, "UNAUTHORIZED", "unauthorized"),
    (502, "PROVIDER_UNAUTHORIZED", "unauthorized"),
    (502, "PROVIDER_ERROR", "provider_error"),
    (503, "NO_HEALTHY_AZ", "unavailable"),
    (504, "UPSTREAM_TIMEOUT", "timeout"),
    (500, "INTERNAL", "unavailable"),
    (0, None, "unavailable"),
    (400, "BAD_SQL", "unavailable"),
])
def test_classify_maps_gateway_answers_to_simulator_outcomes(status, code, outcome) -> None:
    assert classify(status, code) == outcome


def test_percentiles_and_rates_match_the_raw_latencies() -> None:
    scenario = baseline("run.duration=30s", "run.warmup=10s", "run.window=10s")
    rec = ClientRecorder(TENANTS, 10.0)
    rng = np.random.default_rng(5)
    latencies = rng.lognormal(np.log(0.05), 0.8, 6000)
    failed = np.arange(6000) % 10 == 0
    latencies[failed] = 2e-4  # fail-fast errors: they must not pull the SLO latency down
    times = np.sort(rng.uniform(0.0, 30.0, 6000))
    for i, (t, lat) in enumerate(zip(times, latencies)):
        rec.request(float(t), TENANTS[i % 4], float(lat), "timeout" if failed[i] else "ok")
    metrics = compute_metrics(rec.window_facts(scenario, 30.0))
    measured = latencies[times >= 10.0]
    ok = latencies[(times >= 10.0) & ~failed]
    assert metrics["requests"] == len(measured)
    for q in (50, 95, 99):  # 2% log bins: within 1% of the exact order statistic
        exact = float(np.percentile(ok, q))  # the SLO's latency: successes only
        assert metrics[f"latency_p{q}"] == pytest.approx(exact, rel=0.011)
        every = float(np.percentile(measured, q))  # failures included
        assert metrics[f"latency_all_p{q}"] == pytest.approx(every, rel=0.011)
        assert abs(every / exact - 1) > 0.03  # the two definitions really differ here
    assert metrics["latency_mean"] == pytest.approx(float(ok.mean()))
    assert metrics["latency_all_mean"] == pytest.approx(float(measured.mean()))
    errors = int((failed & (times >= 10.0)).sum())
    assert metrics["error_rate"] == pytest.approx(errors / len(measured))
    assert metrics["errors.timeout"] == metrics["error_rate"]
    assert metrics["request_rate"] == pytest.approx(len(measured) / 20.0)


def test_drained_windows_merge_to_the_same_table() -> None:
    scenario = baseline("run.duration=20s", "run.warmup=0s", "run.window=5s")
    direct, master = ClientRecorder(TENANTS, 5.0), ClientRecorder(TENANTS, 5.0)
    workers = [ClientRecorder(TENANTS, 5.0) for _ in range(2)]
    for i in range(400):
        t, tenant, lat = i * 0.05, TENANTS[i % 4], 0.001 * (1 + i % 17)
        outcome = "rate_limited" if i % 9 == 0 else "ok"
        for rec in (direct, workers[i % 2]):
            rec.request(t, tenant, lat, outcome)
            rec.count(t, "cache.hits")
        if i == 200:  # a first report mid-run, then the rest
            for w in workers:
                master.merge(w.drain())
    for w in workers:
        master.merge(w.drain())
    a = window_table(direct.window_facts(scenario, 20.0))
    b = window_table(master.window_facts(scenario, 20.0))
    assert a.equals(b)
    assert a["requests"].tolist() == [100, 100, 100, 100]
    assert a["cache.hit_ratio"].tolist() == [1.0] * 4


def test_partial_and_late_windows_are_left_out() -> None:
    scenario = baseline("run.duration=20s", "run.warmup=0s", "run.window=5s")
    rec = ClientRecorder(TENANTS, 5.0)
    for t in (1.0, 6.0, 12.0, 19.0, 21.0):
        rec.request(t, "acme", 0.01, "ok")
    assert rec.window_facts(scenario, 60.0).arrays["outcomes"].sum() == 4  # 21 s is after the end
    stopped = rec.window_facts(scenario, 13.0)  # Ctrl-C at 13 s: windows [0,5) and [5,10)
    assert stopped.arrays["start"].tolist() == [0.0, 5.0]


def test_fault_marks_follow_the_scenario_timeline() -> None:
    scenario = baseline("faults=[{kind: az_loss, zone: az-a, at: 20s}, "
                        "{kind: provider_outage, provider: crm, at: 5s, duration: 10s}]")
    marks = fault_marks(scenario, 60.0)
    assert [(m.kind, m.start, m.end) for m in marks] == [
        ("az_loss", 20.0, None), ("provider_outage", 5.0, 15.0)]
    assert [m.kind for m in fault_marks(scenario, 10.0)] == ["provider_outage"]
