"""Provider latency that grows with OmniSQL's own calls in flight (issue 14, opt-in)."""

from sim_helpers import load, textbook

from sim import simulate


def _latencies(tmp_path, *overrides):
    data = textbook(
        run={"duration": "4s", "window": "4s", "warmup": "0s"},
        topology__engine={"workers_per_zone": 8, "service_time": "0s"},
        topology__connectors={"enabled": True, "workers_per_zone": 100, "timeout": "1h"},
        topology__providers={"crm": {"latency": "1s", "objects": ["accounts"]}},
        workload={"tenants": {"acme": {"rate": "4/s", "arrivals": "deterministic",
                                       "mix": {"crm.accounts": "100%"}}}},
    )
    result = simulate(load(tmp_path, data, *overrides), seed=1, trace=True)
    start: dict[int, float] = {}
    out = {}
    for t, rid, event in result.trace:
        if event == "attempt":
            start[rid] = t
        else:
            out[rid] = round(t - start[rid], 9)
    return out


def test_latency_scales_with_calls_in_flight_above_the_concurrency(tmp_path):
    # Calls at 0.25, 0.5, 0.75, 1.0, 1.25 s of 1 s each, concurrency 2: the third starts
    # with 2 in flight (x1.5), the fourth with 3 (x2), the fifth with 3 again (the first
    # ended at 1.25 s, as it starts): x2.
    got = _latencies(tmp_path, "topology.providers.crm.concurrency=2")
    assert [got[r] for r in (1, 2, 3, 4, 5)] == [1.0, 1.0, 1.5, 2.0, 2.0]


def test_without_concurrency_latency_ignores_load(tmp_path):
    got = _latencies(tmp_path)
    assert set(got.values()) == {1.0}
