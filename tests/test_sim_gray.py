"""Gray failures and outlier detection (issue 14, item 3): exact timelines with constant
service and deterministic arrivals, and the shipped scenario pair's verdicts."""

import pytest
from sim_helpers import SCENARIOS, load, textbook

from labcore.facts import OUTCOMES
from sim import simulate
from sim.cli import main
from sim.kernel import Environment, Recorder, Streams
from sim.model import System


def _data(zones=("az-a",), workers=1, rate="1/s", **changes):
    data = textbook(
        run={"duration": "12s", "window": "1s", "warmup": "0s"},
        topology__zones=list(zones),
        topology__engine={"workers_per_zone": workers, "service_time": "250ms"},
        workload={"tenants": {"acme": {"rate": rate, "arrivals": "deterministic",
                                       "mix": {"crm.accounts": "100%"}}}},
    )
    data.update(changes)
    return data


def _by_request(tmp_path, data, *overrides):
    result = simulate(load(tmp_path, data, *overrides), seed=1, trace=True)
    out: dict[int, list] = {}
    for t, rid, event in result.trace:
        out.setdefault(rid, []).append((round(t, 9), event))
    return out


def _gray(**fields):
    return [{"kind": "gray_failure", "zone": "az-a", "at": "2500ms", "duration": "3s", **fields}]


def test_latency_factor_applies_for_the_duration_only(tmp_path):
    trace = _by_request(tmp_path, _data(faults=_gray(latency_factor=4)))
    assert trace[2] == [(2.0, "attempt"), (2.25, "ok")]  # before 2.5 s: 250 ms
    for rid in (3, 4, 5):  # started in [2.5 s, 5.5 s): 1 s
        assert trace[rid] == [(float(rid), "attempt"), (rid + 1.0, "ok")]
    assert trace[6] == [(6.0, "attempt"), (6.25, "ok")]  # the fault ended at 5.5 s


def test_error_rate_fails_attempts_at_the_end_of_their_service(tmp_path):
    trace = _by_request(tmp_path, _data(faults=_gray(error_rate="100%")))
    assert trace[3] == [(3.0, "attempt"), (3.25, "unavailable")]
    assert trace[5] == [(5.0, "attempt"), (5.25, "unavailable")]
    assert trace[6] == [(6.0, "attempt"), (6.25, "ok")]


def test_partial_capacity_queues_and_restores(tmp_path):
    # Two workers, 1.4 s service, an arrival a second: never a wait with both. With one
    # of them from 2.5 s to 5.5 s (job 2 keeps its worker), jobs queue behind each other;
    # at 5.5 s the second worker returns and takes the queued job 5 at once.
    data = _data(workers=2, faults=_gray(capacity="50%"))
    data["topology"]["engine"]["service_time"] = "1400ms"
    trace = _by_request(tmp_path, data)
    assert trace[2] == [(2.0, "attempt"), (3.4, "ok")]
    assert trace[3] == [(3.0, "attempt"), (4.8, "ok")]  # waited for job 2 until 3.4 s
    assert trace[4] == [(4.0, "attempt"), (6.2, "ok")]  # waited for job 3 until 4.8 s
    assert trace[5] == [(5.0, "attempt"), (6.9, "ok")]  # started at 5.5 s by the resize
    assert trace[8] == [(8.0, "attempt"), (9.4, "ok")]  # both workers, no wait


def _system(tmp_path, data, *overrides):
    scenario = load(tmp_path, data, *overrides)
    env = Environment(collect_every=scenario.run.window)
    recorder = Recorder(env, scenario.run.window, list(scenario.workload.tenants),
                        outcomes=OUTCOMES)
    return env, System(env, scenario, Streams(1), recorder)


def test_consecutive_failures_eject_a_zone_for_the_ejection_time(tmp_path):
    data = _data(zones=("az-a", "az-b", "az-c"), rate="3/s", faults=[
        {"kind": "gray_failure", "zone": "az-a", "at": "500ms", "error_rate": "100%"}])
    data["run"]["duration"] = "40s"
    env, system = _system(tmp_path, data, "topology.gateway.routing=round_robin",
                          "topology.gateway.outlier_detection={consecutive_failures: 3, "
                          "interval: 1s, base_ejection_time: 10s}")
    # Arrivals every 1/3 s from 1/3 s; round robin sends az-a one a second (at 1/3 + k s)
    # and each fails 0.25 s later: the third failure, at 3.583 s, ejects it for 10 s.
    env.run(until=3.5)
    assert system.gateway.ejected == set()
    env.run(until=3.6)
    assert system.gateway.ejected == {0} and system.gateway.routable == [1, 2]
    assert system.outlier.until[0] == pytest.approx(3.0 + 7 / 12 + 10.0)
    env.run(until=13.9)  # due back at 13.58 s: the next interval sweep (14 s) returns it
    assert system.gateway.ejected == {0}
    env.run(until=14.5)
    assert system.gateway.ejected == set()
    env.run(until=19.0)  # three more failures: ejected again, now for 2 × 10 s
    assert system.gateway.ejected == {0} and system.outlier.times_ejected[0] == 2
    assert system.outlier.until[0] - env.now > 15.0


def test_failure_percentage_ejects_at_the_end_of_an_interval(tmp_path):
    data = _data(zones=("az-a", "az-b", "az-c"), rate="30/s", faults=[
        {"kind": "gray_failure", "zone": "az-a", "at": "0s", "error_rate": "50%"}])
    data["topology"]["engine"]["workers_per_zone"] = 20
    env, system = _system(tmp_path, data, "topology.gateway.outlier_detection={"
                          "consecutive_failures: null, failure_percentage: 30%, "
                          "request_volume: 20, interval: 5s}")
    env.run(until=4.99)
    assert system.gateway.ejected == set()
    env.run(until=5.01)
    assert system.gateway.ejected == {0}


def test_without_outlier_detection_nothing_is_ejected(tmp_path):
    data = _data(zones=("az-a", "az-b", "az-c"), rate="3/s", faults=[
        {"kind": "gray_failure", "zone": "az-a", "at": "500ms", "error_rate": "100%"}])
    env, system = _system(tmp_path, data)
    env.run(until=11.0)
    assert system.outlier is None and system.gateway.routable == [0, 1, 2]


def test_gray_failure_on_a_tier_without_workers_is_refused(tmp_path):
    with pytest.raises(Exception, match="gateway has no workers"):
        load(tmp_path, _data(faults=_gray(tier="gateway")))


@pytest.mark.slow
@pytest.mark.parametrize("name, code", [("gray_zone_ejected", 0), ("gray_zone_undetected", 1)])
def test_gray_zone_scenario_pair(tmp_path, name, code):
    assert main(["run", str(SCENARIOS / f"{name}.yaml"), "--no-plots", "--out",
                 str(tmp_path), "--jobs", "1"]) == code
