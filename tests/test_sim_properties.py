"""Level 4: invariants that hold for any scenario (Hypothesis)."""

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import load, textbook

from labcore.facts import OUTCOMES
from sim import compute_metrics, simulate

FINAL = set(OUTCOMES[1:]) | {"ok"}


@st.composite
def scenarios(draw):
    zones = draw(st.integers(1, 3))
    data = textbook(
        run={"duration": "90s", "window": "5s"},
        topology__zones=[f"az-{i}" for i in range(zones)],
        topology__engine={"workers_per_zone": draw(st.integers(1, 6)),
                          "service_time": {"dist": "exponential",
                                           "mean": f"{draw(st.integers(5, 400))}ms"},
                          "queue_limit": draw(st.sampled_from([None, 0, 5]))},
        topology__cache={"enabled": draw(st.booleans()), "keys": draw(st.integers(1, 50)),
                         "ttl": "5s"},
        topology__connectors={"enabled": True, "workers_per_zone": draw(st.integers(1, 6))},
        topology__providers={"crm": {"latency": {"dist": "exponential", "mean": "50ms"},
                                     "objects": ["accounts"],
                                     "rate_limit": {
                                         "per_tenant": f"{draw(st.integers(1, 50))}/s"}}},
        topology__gateway={"timeout": f"{draw(st.integers(1, 5))}s",
                           "health_check": {"interval": "2s"},
                           "retries": {"max_attempts": draw(st.integers(1, 3)),
                                       "backoff": draw(st.sampled_from(
                                           ["none", "exponential", "full_jitter",
                                            "equal_jitter", "decorrelated_jitter"]))}},
        workload={"tenants": {"acme": {"rate": f"{draw(st.integers(1, 40))}/s",
                                       "mix": {"crm.accounts": "100%"}}}},
    )
    if draw(st.booleans()):
        data["faults"] = [{"kind": "az_loss", "zone": "az-0", "at": "30s",
                           "duration": draw(st.sampled_from([None, "20s"])),
                           "blackhole": draw(st.booleans())}]
    return data, draw(st.integers(0, 2**16))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_request_lifecycles_are_well_formed(tmp_path, case):
    data, seed = case
    scenario = load(tmp_path, data)
    result = simulate(scenario, seed, trace=True)
    events = defaultdict(list)
    for t, rid, event in result.trace:
        events[rid].append((t, event))
    max_attempts = scenario.topology.gateway.retries.max_attempts
    finished = 0
    for timeline in events.values():
        times = [t for t, _ in timeline]
        assert times == sorted(times), "a request finished before it started"
        finals = [e for _, e in timeline if e in FINAL]
        assert len(finals) <= 1
        assert timeline[0][1] == "attempt"
        assert sum(e == "attempt" for _, e in timeline) <= max_attempts
        if finals:
            assert timeline[-1][1] == finals[0]
            finished += 1
    assert finished == result.requests  # every recorded outcome is one finished request


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate=st.integers(1, 30), workers=st.integers(4, 8), seed=st.integers(0, 1000))
def test_no_faults_no_overload_means_full_availability(tmp_path, rate, workers, seed):
    # Utilisation at most 30 × 20 ms / 4 = 15%, no rate limit, timeouts far away.
    scenario = load(tmp_path, textbook(
        run={"duration": "2m", "window": "10s"},
        topology__engine={"workers_per_zone": workers, "service_time": "20ms"},
        topology__gateway={"timeout": "1m"},
        workload={"tenants": {"acme": {"rate": f"{rate}/s", "mix": {"crm.accounts": "100%"}}}},
    ))
    metrics = compute_metrics(simulate(scenario, seed))
    assert metrics["availability"] == 1.0
    assert metrics["requests"] > 0
