"""Level 3: agreement with queueing theory over replications, with confidence intervals.

A fixed set of seeds makes these deterministic; the bands are 99.9% Student-t intervals
over the replications, so another set of seeds would pass too with high probability.
"""

import math

import numpy as np
import pytest
from scipy.stats import t as student_t
from sim_helpers import load, textbook

from sim import compute_metrics, replication_seeds, simulate


def erlang_c(c: int, lam: float, mu: float) -> tuple[float, float]:
    """P(wait) and mean wait Wq of an M/M/c queue."""
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait, p_wait / (c * mu - lam)


def test_erlang_c_reference_values():
    p_wait, wq = erlang_c(8, 6.4, 1.0)
    assert p_wait == pytest.approx(0.457645, abs=1e-6)
    assert wq == pytest.approx(0.286028, abs=1e-6)


def _replicate(scenario, n):
    return [compute_metrics(simulate(scenario, s)) for s in replication_seeds(11, n)]


def _within(values, theory, confidence=0.999):
    arr = np.asarray(values, dtype=float)
    half = student_t.ppf(0.5 + confidence / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    return abs(arr.mean() - theory) <= half, arr.mean(), half


@pytest.mark.parametrize("c, lam", [(8, 6.4), (2, 1.0), (4, 3.6)])
def test_mmc_wait_matches_erlang_c(tmp_path, c, lam):
    scenario = load(tmp_path, textbook(), f"topology.engine.workers_per_zone={c}",
                    f"workload.tenants.acme.rate={lam}/s", "run.duration=3h")
    runs = _replicate(scenario, 10)
    p_wait, wq = erlang_c(c, lam, 1.0)
    for metric, theory in (("engine.wait_probability", p_wait), ("engine.queue_wait_mean", wq),
                           ("latency_mean", wq + 1.0)):
        ok, mean, half = _within([r[metric] for r in runs], theory)
        assert ok, f"{metric}: {mean:.4f} ± {half:.4f} vs theory {theory:.4f}"


def test_littles_law_for_the_engine_servers(tmp_path):
    """Mean busy servers L = λ·E[S], whatever the service distribution."""
    scenario = load(tmp_path, textbook(), "run.duration=1h",
                    "topology.engine.service_time={dist: lognormal, median: 500ms, p99: 5s}")
    runs = _replicate(scenario, 8)
    mean_service = scenario.topology.engine.service_time.mean
    busy = [r["engine.utilization"] * 8 for r in runs]
    expected = [r["request_rate"] * mean_service for r in runs]
    ok, mean, half = _within([b - e for b, e in zip(busy, expected)], 0.0)
    assert ok, f"L - λE[S] = {mean:.4f} ± {half:.4f}"
