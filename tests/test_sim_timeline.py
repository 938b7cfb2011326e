"""Level 1: exact timelines with constant distributions and evenly spaced arrivals."""

import pytest
from sim_helpers import load, textbook

from sim import simulate


def _timeline(tmp_path, *overrides, **changes):
    data = textbook(
        run={"duration": "15s", "window": "1s"},
        topology__engine={"workers_per_zone": 1, "service_time": "250ms"},
        topology__cache={"enabled": True, "latency": "10ms", "keys": 1, "ttl": "10s"},
        topology__connectors={"enabled": True, "workers_per_zone": 1},
        topology__providers={"crm": {"latency": "500ms", "objects": ["accounts"]}},
        workload={"tenants": {"acme": {"rate": "1/s", "arrivals": "deterministic",
                                       "mix": {"crm.accounts": "100%"}}}},
    )
    for key, value in changes.items():
        node = data
        parts = key.split("__")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    result = simulate(load(tmp_path, data, *overrides), seed=1, trace=True)
    return [(round(t, 9), rid, event) for t, rid, event in result.trace]


def test_miss_then_hits_until_the_ttl_expires(tmp_path):
    trace = _timeline(tmp_path)
    by_request = {}
    for t, rid, event in trace:
        by_request.setdefault(rid, []).append((t, event))
    # Request 1 misses: engine 250 ms + cache lookup 10 ms, then the provider's 500 ms.
    assert by_request[1] == [(1.0, "attempt"), (1.76, "ok")]
    # Requests 2..11 hit the key cached at 1.76 until it expires at 11.76.
    for rid in range(2, 12):
        assert by_request[rid] == [(float(rid), "attempt"), (rid + 0.26, "ok")]
    # Request 12's lookup at 12.26 finds the key expired: a second fetch.
    assert by_request[12] == [(12.0, "attempt"), (12.76, "ok")]


def test_zone_loss_fails_in_flight_work_and_retries_after_backoff(tmp_path):
    trace = _timeline(
        tmp_path,
        "topology.gateway.retries.max_attempts=2",
        "topology.gateway.retries.backoff=exponential",
        "topology.gateway.retries.base=100ms",
        faults=[{"kind": "az_loss", "zone": "az-a", "at": "1100ms"}],
    )
    first = [(t, e) for t, rid, e in trace if rid == 1]
    # In flight at 1.1 s: fails at once, retried 100 ms later, refused by the dead zone.
    assert first == [(1.0, "attempt"), (1.2, "attempt"), (1.2, "unavailable")]


def test_black_holed_zone_times_out(tmp_path):
    trace = _timeline(
        tmp_path,
        "topology.gateway.timeout=2s",
        faults=[{"kind": "az_loss", "zone": "az-a", "at": "1100ms", "blackhole": True}],
    )
    assert [(t, e) for t, rid, e in trace if rid == 1] == [(1.0, "attempt"), (3.0, "timeout")]


def test_client_timeout_while_the_engine_keeps_working(tmp_path):
    trace = _timeline(tmp_path, "topology.gateway.timeout=200ms", "run.duration=3s")
    assert [(t, e) for t, rid, e in trace if rid == 1] == [(1.0, "attempt"), (1.2, "timeout")]
    assert [(t, e) for t, rid, e in trace if rid == 2] == [(2.0, "attempt"), (2.2, "timeout")]


def test_queueing_on_a_single_worker(tmp_path):
    # Arrivals every 200 ms, service 250 ms + 10 ms, every request a hit after the first
    # fetch: the queue grows by 60 ms per request.
    trace = _timeline(tmp_path, "workload.tenants.acme.rate=5/s", "run.duration=2s",
                      "topology.cache.keys=1", "topology.providers.crm.latency=0")
    done = [t for t, rid, e in trace if e == "ok"]
    assert done[:4] == pytest.approx([0.46, 0.72, 0.98, 1.24])
