"""Load-balancing policies across zones (issue 14, item 2).

Level 1: exact behaviour with deterministic arrivals and constant service, and the
balancer's outstanding-request bookkeeping. Level 3 (Ciw's Cycle, LoadBalancing and a
power-of-two router, Erlang C for random) is in ``python -m sim validate-model``
(the ``LB ...`` cases, tests/test_validation.py)."""

import pytest
from sim_helpers import load, textbook

from labcore.facts import OUTCOMES
from labcore.metrics import compute_metrics
from sim import simulate
from sim.kernel import Environment, Recorder, Streams
from sim.model import System
from sim.validation import CASES, QUICK
from sim.validation.cases import balancing_bounds

POLICIES = ("random", "round_robin", "least_outstanding", "power_of_two")


def _three_zones(tmp_path, policy, *overrides, rate="3/s", service="900ms"):
    data = textbook(
        run={"duration": "20s", "window": "20s", "warmup": "0s"},
        topology__zones=["az-a", "az-b", "az-c"],
        topology__engine={"workers_per_zone": 1, "service_time": service},
        topology__gateway__routing=policy,
        workload={"tenants": {"acme": {"rate": rate, "arrivals": "deterministic", "users": 4,
                                       "mix": {"crm.accounts": "100%"}}}},
    )
    scenario = load(tmp_path, data, *overrides)
    env = Environment(collect_every=scenario.run.window)
    recorder = Recorder(env, scenario.run.window, list(scenario.workload.tenants),
                        outcomes=OUTCOMES)
    system = System(env, scenario, Streams(1), recorder)
    env.run(until=scenario.run.duration - 1e-9)  # before the window closes: counters intact
    return system


@pytest.mark.parametrize("policy", ["round_robin", "least_outstanding"])
def test_informed_policies_never_queue_when_a_free_zone_exists(tmp_path, policy):
    # Three arrivals a second, three single-worker zones, 0.9 s service: a policy that
    # sends each arrival to an idle zone never makes a job wait.
    system = _three_zones(tmp_path, policy)
    started = [s.started for s in system.engine.stations]
    assert sum(started) >= 57 and max(started) - min(started) <= 1
    assert sum(s.waited for s in system.engine.stations) == 0


def test_random_routing_queues_at_the_same_load(tmp_path):
    system = _three_zones(tmp_path, "random")
    assert sum(s.waited for s in system.engine.stations) > 0


@pytest.mark.parametrize("policy", POLICIES[1:])
def test_outstanding_counts_are_the_live_attempts_per_zone(tmp_path, policy):
    system = _three_zones(tmp_path, policy, rate="5/s", service="1s")  # overloaded: queues
    live = [0, 0, 0]
    for attempt in system.client.inflight():
        live[attempt.zone] += 1
    assert system.gateway.outstanding == live and sum(live) > 0


def test_outstanding_and_user_caps_share_the_attempt_slot(tmp_path):
    system = _three_zones(tmp_path, "least_outstanding", "topology.gateway.user_caps="
                          "[{tenant: acme, user: '*', max_concurrency: 1}]",
                          rate="5/s", service="1s")
    live = [0, 0, 0]
    held: dict = {}
    for attempt in system.client.inflight():
        live[attempt.zone] += 1
        if attempt.slot & 1:
            key = (attempt.request.tenant, attempt.request.user)
            held[key] = held.get(key, 0) + 1
    assert system.gateway.outstanding == live
    assert {k: v for k, v in system.gateway.inflight.items() if v} == held
    assert all(v <= 1 for v in held.values()) and system.gateway.capped > 0


def test_round_robin_skips_a_zone_marked_down(tmp_path):
    system = _three_zones(tmp_path, "round_robin",
                          "faults=[{kind: az_loss, zone: az-b, at: 1500ms}]",
                          "topology.gateway.health_check={interval: 1s, failure_threshold: 1}")
    a, b, c = (s.started for s in system.engine.stations)
    # az-b: lost at 1.5 s, marked down at 2 s, never routed to again; the two others
    # (1.5 arrivals/s each for 1.11/s of service) stay busy from then on: ~20 jobs each.
    assert b <= 2 and a >= 19 and c >= 19


def test_policies_order_as_queueing_theory_says():
    """On 3 zones of M/M/8 at utilisation 0.8 (same arrivals and services for all, common
    random numbers), more information routes better: random (independent M/M/8) >
    round robin > power of two and least outstanding, and all above ~pooled M/M/24."""
    waits = {}
    for policy in POLICIES:
        (case,) = [c for c in CASES if c.name == f"LB {policy}, 3x M/M/8"]
        values = [compute_metrics(simulate(case.scenario(QUICK), seed))["engine.queue_wait_mean"]
                  for seed in (1, 2, 3)]
        waits[policy] = sum(values) / len(values)
    pooled, independent = balancing_bounds(case.scenario(QUICK))
    assert waits["random"] == pytest.approx(independent, rel=0.25)
    assert waits["random"] > 1.5 * waits["round_robin"] > 3 * waits["power_of_two"]
    assert waits["round_robin"] > 2 * waits["least_outstanding"]
    assert min(waits["least_outstanding"], waits["power_of_two"]) > 0.8 * pooled


def test_the_policy_is_set_on_az_loss_from_the_command_line(tmp_path):
    from labcore.scenario_file import read_scenario

    for policy in POLICIES:
        loaded = read_scenario("scenarios/az_loss.yaml",
                               overrides=[f"topology.gateway.routing={policy}"])
        assert loaded.scenario.topology.gateway.routing == policy
    with pytest.raises(Exception, match="routing"):
        read_scenario("scenarios/az_loss.yaml", overrides=["topology.gateway.routing=fastest"])
