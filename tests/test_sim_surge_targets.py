"""Surges that target a zone or every tenant (issue 13): ``traffic_surge`` with
``zone: <az>`` and/or ``tenant: "*"``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sim_helpers import ROOT, load, textbook, write

from labcore.facts import OUTCOMES
from labcore.scenario_file import ScenarioError, read_scenario
from labcore.workload import RateFunction
from sim import simulate
from sim.kernel import Environment, Recorder, Streams
from sim.model import System

ZONES = ["az-a", "az-b", "az-c"]


def _data(*faults: dict, routing: str = "random") -> dict:
    """Three zones with ample engines, two tenants at 20/s and 10/s (Poisson)."""
    return textbook(
        run={"duration": "60s", "window": "10s", "warmup": "0s"},
        topology__zones=ZONES,
        topology__engine={"workers_per_zone": 40, "service_time": "10ms"},
        topology__gateway__routing=routing,
        workload={"tenants": {
            "acme": {"rate": "20/s", "users": 4, "mix": {"crm.accounts": "100%"}},
            "globex": {"rate": "10/s", "users": 4, "mix": {"crm.accounts": "100%"}}}},
        faults=list(faults),
    )


def _system(tmp_path, data: dict) -> System:
    scenario = load(tmp_path, data)
    env = Environment(collect_every=scenario.run.window)
    recorder = Recorder(env, scenario.run.window, list(scenario.workload.tenants),
                        outcomes=OUTCOMES)
    system = System(env, scenario, Streams(1), recorder)
    env.run(until=scenario.run.duration - 1e-9)  # before the last window closes
    return system


@pytest.mark.parametrize("routing", ["random", "round_robin"])
def test_a_zone_surge_sends_its_extra_requests_to_that_zone(tmp_path, routing) -> None:
    # acme x4 into az-b for the whole run: 60/s extra there, the base 30/s spread evenly
    surge = {"kind": "traffic_surge", "tenant": "acme", "zone": "az-b", "at": "0s",
             "duration": "60s", "factor": 4}
    system = _system(tmp_path, _data(surge, routing=routing))
    started = [s.started for s in system.engine.stations]
    share = started[1] / sum(started)
    assert share == pytest.approx((60 + 10) / 90, abs=0.03), started
    assert started[0] == pytest.approx(started[2], rel=0.25)
    if routing != "random":  # the balancer's bookkeeping holds for pinned attempts too
        live = [0, 0, 0]
        for attempt in system.client.inflight():
            live[attempt.zone] += 1
        assert system.gateway.outstanding == live


def test_without_a_zone_the_surge_spreads_over_the_zones(tmp_path) -> None:
    surge = {"kind": "traffic_surge", "tenant": "acme", "at": "0s", "duration": "60s",
             "factor": 4}
    started = [s.started for s in _system(tmp_path, _data(surge)).engine.stations]
    assert max(started) / min(started) < 1.2, started


def test_a_lost_zone_does_not_keep_its_pinned_requests(tmp_path) -> None:
    # az-b is lost at 0s; once health checks mark it down, the surge goes elsewhere
    surge = {"kind": "traffic_surge", "tenant": "acme", "zone": "az-b", "at": "0s",
             "duration": "60s", "factor": 4}
    loss = {"kind": "az_loss", "zone": "az-b", "at": "0s"}
    data = _data(surge, loss)
    data["topology"]["gateway"]["health_check"] = {"interval": "1s", "failure_threshold": 2}
    result = simulate(load(tmp_path, data))
    outcomes = result.arrays["outcomes"].sum(axis=(0, 1))
    ok = outcomes[0] / outcomes.sum()
    assert ok > 0.9  # only the first seconds' attempts to az-b failed (and were retried)


def test_every_tenant_surges_with_tenant_star(tmp_path) -> None:
    surge = {"kind": "traffic_surge", "tenant": "*", "at": "30s", "duration": "30s",
             "factor": 3}
    scenario = load(tmp_path, _data(surge))
    for name in ("acme", "globex"):
        rate = RateFunction(scenario.workload.tenants[name].rate, scenario, name)
        assert rate(45.0) == pytest.approx(3 * rate(15.0))
    per_tenant = simulate(scenario).arrays["outcomes"].sum(axis=2)  # (window, tenant)
    before, during = per_tenant[:3].sum(axis=0), per_tenant[3:].sum(axis=0)
    for t in range(2):
        assert during[t] / before[t] == pytest.approx(3.0, rel=0.15), (before, during)


def test_zone_shares_split_the_extra_between_zone_surges(tmp_path) -> None:
    a = {"kind": "traffic_surge", "tenant": "acme", "zone": "az-a", "at": "0s",
         "duration": "60s", "factor": 2}
    c = {"kind": "traffic_surge", "tenant": "*", "zone": "az-c", "at": "0s",
         "duration": "60s", "factor": 3}
    everyone = {"kind": "traffic_surge", "tenant": "*", "at": "0s", "duration": "60s",
                "factor": 5}
    scenario = load(tmp_path, _data(a, c, everyone))
    acme = RateFunction(1.0, scenario, "acme")
    assert acme(1.0) == pytest.approx(30.0)
    shares = dict(acme.zone_shares(1.0))  # 6 of the 30 are the zone surges' extra: 5/6 more
    assert sum(shares.values()) == pytest.approx(1 - 1 / 6)
    assert shares["az-c"] == pytest.approx(2 * shares["az-a"])
    assert dict(RateFunction(1.0, scenario, "globex").zone_shares(1.0)) == {
        "az-c": pytest.approx(2 / 3)}
    assert acme.zone_shares(61.0) == []


def test_a_bad_zone_is_refused_with_file_field_and_line(tmp_path) -> None:
    path = write(tmp_path, _data({"kind": "traffic_surge", "tenant": "*", "zone": "az-x",
                                  "at": "0s", "duration": "10s", "factor": 2}))
    with pytest.raises(ScenarioError) as info:
        read_scenario(path)
    text = str(info.value)
    assert "faults.0" in text and "unknown zone 'az-x'" in text and "az-a" in text
    done = subprocess.run([sys.executable, "-m", "sim", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"{path}:" in done.stderr and "faults.0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("fault", "message"), [
    ({"tenant": "nobody"}, "unknown tenant 'nobody'"),
    ({"tenant": "*", "zone": "az-a", "factor": 0.5}, "factor must be above 1"),
])
def test_other_bad_surges_are_refused(tmp_path, fault, message) -> None:
    surge = {"kind": "traffic_surge", "at": "0s", "duration": "10s", "factor": 2} | fault
    with pytest.raises(ScenarioError, match=message):
        read_scenario(write(tmp_path, _data(surge)))


def test_the_locust_plan_counts_every_tenant_as_noisy_under_tenant_star(tmp_path) -> None:
    from loadtests.shapes import tenant_kinds

    surge = {"kind": "traffic_surge", "tenant": "*", "at": "0s", "duration": "10s",
             "factor": 2}
    assert tenant_kinds(load(tmp_path, _data(surge))) == {"acme": "noisy", "globex": "noisy"}
