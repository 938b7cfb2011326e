"""Per-tier wait distributions (issue 14, item 1): exact timelines and the opt-in rule.

Level 1 here; level 3 (Erlang C's wait tail and Ciw over replications) is the
"M/M/8 wait tail" case of ``python -m sim validate-model`` (tests/test_validation.py)."""

import numpy as np
import pytest
from sim_helpers import load, textbook

from labcore.metrics import compute_metrics, wait_label, wait_quantile, wait_tail
from sim import simulate
from sim.kernel.recorder import BIN_GROWTH
from sim.validation.queueing import erlang_c, mmc_wait_quantile, mmc_wait_tail


def _queue(tmp_path, *overrides):
    """One worker, 1.5 s service, arrivals at 1, 2, 3... s: job k waits 0.5·(k − 1) s."""
    data = textbook(
        run={"duration": "10s", "window": "10s", "warmup": "0s"},
        topology__engine={"workers_per_zone": 1, "service_time": "1500ms"},
        workload={"tenants": {"acme": {"rate": "1/s", "arrivals": "deterministic",
                                       "mix": {"crm.accounts": "100%"}}}},
    )
    return simulate(load(tmp_path, data, *overrides), seed=1)


def test_waits_of_a_deterministic_queue(tmp_path):
    result = _queue(tmp_path, "run.wait_histograms=true", "run.wait_over=[1250ms, 100ms, 3s]")
    m = compute_metrics(result)
    # Six jobs start before 10 s (at 1, 2.5, 4, 5.5, 7, 8.5) with waits 0, .5, 1, 1.5, 2, 2.5.
    assert m["engine.throughput"] * 10 == pytest.approx(6)
    assert result.arrays["tier_wait_hist"].sum() == 5
    assert m["engine.p_wait_over_1250ms"] == pytest.approx(3 / 6)
    assert m["engine.p_wait_over_100ms"] == pytest.approx(5 / 6)
    assert m["engine.p_wait_over_3s"] == 0.0
    # Rank 0.95·6 = 5.7 of 6 lies inside the largest wait's bin (2.5 s, 2% wide).
    assert m["engine.wait_p95"] == pytest.approx(2.5, rel=0.02)
    assert m["engine.wait_p99"] == pytest.approx(2.5, rel=0.02)


def test_wait_tail_metrics_are_opt_in(tmp_path):
    result = _queue(tmp_path)
    assert "tier_wait_hist" not in result.arrays
    assert not [k for k in compute_metrics(result) if "wait_p9" in k or "p_wait_over" in k]


def test_quantile_and_tail_read_the_same_histogram():
    hist = np.zeros(1000, dtype=np.int64)
    hist[[400, 500, 600]] = [10, 20, 10]
    started = 80.0  # 40 jobs did not wait
    assert wait_quantile(hist, started, 0.25) == 0.0
    assert wait_quantile(hist, started, 0.5) == 0.0
    x = wait_quantile(hist, started, 0.75)
    assert wait_tail(hist, started, x) == pytest.approx(0.25)
    assert 1e-4 * BIN_GROWTH ** 500 <= x <= 1e-4 * BIN_GROWTH ** 501
    assert np.isnan(wait_tail(hist, 0, 1.0)) and np.isnan(wait_quantile(hist, 0, 0.5))


def test_erlang_c_wait_tail_closed_form():
    c, lam, mu = 8, 6.4, 1.0
    assert mmc_wait_tail(c, lam, mu, 0.0) == pytest.approx(erlang_c(c, lam, mu))
    q = mmc_wait_quantile(c, lam, mu, 0.95)
    assert mmc_wait_tail(c, lam, mu, q) == pytest.approx(0.05)
    assert q == pytest.approx(1.3838, abs=1e-4)
    assert mmc_wait_quantile(c, lam, mu, 0.5) == 0.0  # fewer than half the jobs wait


@pytest.mark.parametrize("seconds, label", [(1.0, "1s"), (0.25, "250ms"), (90.0, "90s"),
                                            (1.5, "1500ms"), (1e-4, "0_0001s")])
def test_wait_labels(seconds, label):
    assert wait_label(seconds) == label
