"""Autoscaling (issue 14, item 4): exact timelines with constant distributions, and the
shipped scenario pair's verdicts."""

import pytest
from sim_helpers import SCENARIOS, load, textbook

from labcore.facts import OUTCOMES
from labcore.metrics import window_table
from sim import simulate
from sim.cli import main
from sim.kernel import Environment, Recorder, Streams
from sim.model import System


def _data(workers, rate, **autoscaling):
    spec = {"target": "50%", "interval": "5s", "scale_out_delay": "3s",
            "scale_in_cooldown": "100s", "min_per_zone": 1, "max_per_zone": 8, **autoscaling}
    return textbook(
        run={"duration": "30s", "window": "5s", "warmup": "0s"},
        topology__engine={"workers_per_zone": workers, "service_time": "1s",
                          "autoscaling": spec},
        workload={"tenants": {"acme": {"rate": rate, "arrivals": "deterministic",
                                       "mix": {"crm.accounts": "100%"}}}},
    )


def _system(tmp_path, data):
    scenario = load(tmp_path, data)
    env = Environment(collect_every=scenario.run.window)
    recorder = Recorder(env, scenario.run.window, list(scenario.workload.tenants),
                        outcomes=OUTCOMES)
    return env, System(env, scenario, Streams(1), recorder)


def test_scale_out_doubles_every_interval_after_the_start_up_delay(tmp_path):
    # Four arrivals a second for one 1 s worker: every sample sees the pool 100% busy,
    # so each decision (every 5 s) asks for twice the workers (target 50%); they serve
    # 3 s later: 1 → 2 at 8 s, → 4 at 13 s, → 8 (the maximum) at 18 s.
    env, system = _system(tmp_path, _data(1, "4/s"))
    station, (scaler,) = system.engine.stations[0], system.autoscalers
    expected = {4.9: 1, 7.9: 1, 8.1: 2, 12.9: 2, 13.1: 4, 17.9: 4, 18.1: 8, 29.0: 8}
    for t, workers in expected.items():
        env.run(until=t)
        assert station.capacity == workers, t
    assert scaler.log == [(5.0, 0, 1, 1), (10.0, 0, 2, 2), (15.0, 0, 4, 4)]


def test_scale_in_goes_to_the_minimum_at_once(tmp_path):
    env, system = _system(tmp_path, _data(8, "0.001/s", min_per_zone=2))
    env.run(until=4.9)
    assert system.engine.stations[0].capacity == 8
    env.run(until=5.1)
    assert system.engine.stations[0].capacity == 2


def test_the_maximum_caps_the_scale_out(tmp_path):
    # Scaled out at 5 s to the maximum of 2 (still overloaded after: no further action);
    # the log has that one action and nothing else within the run.
    env, system = _system(tmp_path, _data(1, "4/s", max_per_zone=2))
    env.run(until=29.0)
    station, (scaler,) = system.engine.stations[0], system.autoscalers
    assert station.capacity == 2 and [entry[0] for entry in scaler.log] == [5.0]


def test_capacity_is_in_the_window_table(tmp_path):
    result = simulate(load(tmp_path, _data(1, "4/s")), seed=1)
    workers = window_table(result)["engine.workers"].tolist()
    # Windows of 5 s: 1 worker, then 2 from 8 s (3 s of 1, 2 s of 2), then 4 from 13 s...
    assert workers == pytest.approx([1.0, 1.4, 2.8, 5.6, 8.0, 8.0])


def test_pools_without_autoscaling_have_no_workers_column(tmp_path):
    data = _data(1, "1/s")
    del data["topology"]["engine"]["autoscaling"]
    assert not [c for c in window_table(simulate(load(tmp_path, data), seed=1)).columns
                if c.endswith(".workers")]


@pytest.mark.slow
@pytest.mark.parametrize("name, code", [("surge_autoscaled", 0), ("surge_autoscale_too_slow", 1)])
def test_surge_scenario_pair(tmp_path, name, code):
    assert main(["run", str(SCENARIOS / f"{name}.yaml"), "--no-plots", "--out",
                 str(tmp_path), "--jobs", "1"]) == code
