"""Closed-loop users (issue 14, item 5): exact timelines, and mean value analysis (MVA)
over replications for a closed network of one FIFO station and a think-time delay."""

import numpy as np
import pytest
from scipy import stats
from sim_helpers import load, textbook

from labcore.metrics import compute_metrics
from sim import simulate


def _data(closed, service, workers=1, duration="10s", users=1):
    return textbook(
        run={"duration": duration, "window": duration, "warmup": "0s"},
        topology__engine={"workers_per_zone": workers, "service_time": service},
        workload={"tenants": {"acme": {"rate": "1/s", "users": users, "closed_loop": closed,
                                       "mix": {"crm.accounts": "100%"}}}},
    )


def _sends(tmp_path, data):
    result = simulate(load(tmp_path, data), seed=1, trace=True)
    return [round(t, 9) for t, _, event in result.trace if event == "attempt"], result


def test_a_user_thinks_then_waits_for_each_answer(tmp_path):
    sends, _ = _sends(tmp_path, _data({"think_time": "1s"}, "500ms"))
    assert sends == [1.0, 2.5, 4.0, 5.5, 7.0, 8.5]  # think 1 s, served in 0.5 s, again


def test_sessions_per_user_are_independent(tmp_path):
    sends, _ = _sends(tmp_path, _data({"think_time": "1s", "in_flight": 2}, "500ms", workers=2))
    assert sends == [1.0, 1.0, 2.5, 2.5, 4.0, 4.0, 5.5, 5.5, 7.0, 7.0, 8.5, 8.5]


def test_an_impatient_user_moves_on(tmp_path):
    # Service 3 s, patience 1 s, think 1 s: a new query every 2 s, all but the first
    # queued behind unfinished work (one worker): the load no longer waits for answers.
    sends, result = _sends(tmp_path, _data({"think_time": "1s", "patience": "1s"}, "3s"))
    assert sends == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert result.requests == 2  # answered at 4 and 7 s; the third ends at 10 s, the end
    assert compute_metrics(result)["users.abandoned"] == 4  # all but the one sent at 9 s


def _mva(n: int, service: float, think: float) -> tuple[float, float]:
    """Exact MVA for one FIFO exponential server and a delay: (throughput, response)."""
    queue = 0.0
    for k in range(1, n + 1):
        response = service * (1.0 + queue)
        throughput = k / (response + think)
        queue = throughput * response
    return throughput, response


@pytest.mark.parametrize("users", [1, 5, 12])
def test_closed_network_agrees_with_mean_value_analysis(tmp_path, users):
    """Throughput and mean response time over 10 replications against exact MVA (one
    M-server at 0.5 s, exponential think time 2 s), a one-sample t test per quantity at
    0.01 / 6 (Bonferroni over this test's 3 cases × 2 quantities)."""
    data = _data({"think_time": {"dist": "exponential", "mean": "2s"}},
                 {"dist": "exponential", "mean": "500ms"}, duration="2000s", users=users)
    data["run"].update({"warmup": "200s", "window": "100s"})
    scenario = load(tmp_path, data)
    runs = [compute_metrics(simulate(scenario, seed)) for seed in range(1, 11)]
    x, r = _mva(users, 0.5, 2.0)
    for name, expected in (("request_rate", x), ("latency_mean", r)):
        values = np.array([m[name] for m in runs])
        p = stats.ttest_1samp(values, expected).pvalue
        assert p >= 0.01 / 6, (name, values.mean(), expected, p)
