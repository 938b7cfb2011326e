"""Ciw on the same networks as the textbook cases: the independent simulator.

Ciw (https://github.com/CiwPython/Ciw) is given the network the scenario describes:
the same arrival rates, server counts and service distributions, and for the AZ loss
the lost zone's server schedule dropping to 0 at the loss and the survivors' arrival
rates stepping up when the health checks mark the zone down. It draws its own random
numbers. ``ciw.seed`` is global: each replication sets it right before building and
running its network, and runs alone in its call (in its own worker process when the
command runs in parallel).

The quantities are measured over the lab's measured interval with the lab's
conventions: waits of jobs starting service in it, latencies of customers leaving it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from labcore.distributions import Constant, Exponential
from labcore.scenario import Scenario
from labcore.scenario_file import load_scenario

from .cases import (
    TEXTBOOK,
    Kind,
    az_spans,
    detection_time,
    tail_quantities,
    tandem_tiers,
    the_loss,
)

__all__ = ["CIW_README_WAIT", "ciw_quantities", "ciw_readme_check"]

#: Mean wait of Ciw's README example (M/M/3, λ = 0.2, μ = 0.1, seed 1, 1440 time units).
CIW_README_WAIT = 4.230543089827278


def _ciw_dist(dist: Any) -> Any:
    import ciw

    if isinstance(dist, Exponential):
        return ciw.dists.Exponential(rate=1.0 / dist.mean)
    if isinstance(dist, Constant):
        return ciw.dists.Deterministic(value=dist.value)
    raise ValueError(f"no Ciw counterpart for {dist!r} in the validation cases")


def _ciw_records(build: Callable[[], Any], seed: int, horizon: float) -> tuple[pd.DataFrame, Any]:
    """One Ciw run. ``ciw.seed`` is global: it is set here, right before the network is
    built (time-varying arrivals draw at construction) and run, and nothing else runs
    Ciw in between."""
    import ciw

    ciw.seed(seed)
    simulation = ciw.Simulation(build())
    simulation.simulate_until_max_time(horizon)
    return pd.DataFrame(simulation.get_all_records()), simulation


def _slack(scenario: Scenario) -> float:
    """Run Ciw this long past the end, so that every job started before it finishes."""
    topo = scenario.topology
    means = [topo.engine.service_time.mean, topo.gateway.service_time.mean]
    means += [p.latency.mean for p in topo.providers.values()]
    return 50.0 * max(means)


def ciw_quantities(kind: Kind, scenario: Scenario, seed: int) -> dict[str, float]:
    """The case's quantities measured on one Ciw run of the same network."""
    if kind == "station":
        return _ciw_station(scenario, seed)
    if kind == "tandem":
        return _ciw_tandem(scenario, seed)
    if kind == "balancing":
        return _ciw_balancing(scenario, seed)
    return _ciw_az_loss(scenario, seed)


def _ciw_station(scenario: Scenario, seed: int) -> dict[str, float]:
    import ciw

    engine, lam = scenario.topology.engine, scenario.workload.total_rate()
    w, t = scenario.run.warmup, scenario.run.duration
    limit = math.inf if engine.queue_limit is None else engine.queue_limit
    timeout = scenario.topology.gateway.timeout
    # drop_expired: a queued job whose client gave up never starts: reneging at the timeout.
    patience = [ciw.dists.Deterministic(value=timeout)] if engine.drop_expired else None
    records, _ = _ciw_records(lambda: ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)],
        service_distributions=[_ciw_dist(engine.service_time)],
        number_of_servers=[engine.workers_per_zone],
        queue_capacities=[limit],
        reneging_time_distributions=patience,
    ), seed, t + _slack(scenario))
    served = records[records.record_type == "service"]
    out = _waits(served, w, t)
    busy = (np.minimum(served.service_end_date, t) - np.maximum(served.service_start_date, w))
    out["utilisation"] = float(busy.clip(lower=0).sum() / (engine.workers_per_zone * (t - w)))
    if engine.queue_limit is not None:
        rejected = records[records.record_type == "rejection"]
        n_rej = int(rejected.arrival_date.between(w, t, inclusive="left").sum())
        n_done = int(served.exit_date.between(w, t, inclusive="left").sum())
        out["P(block)"] = n_rej / (n_rej + n_done)
    if engine.drop_expired:
        out.update(_timeouts(records, timeout, w, t))
    if scenario.run.wait_histograms:
        out.update(_wait_tail(scenario, served, w, t))
    return out


def _wait_tail(scenario: Scenario, served: pd.DataFrame, w: float, t: float,
               ) -> dict[str, float]:
    """Wait quantiles and P(wait > x) of jobs starting service in [w, t), from Ciw's
    exact waits (the lab's come from 2% bins)."""
    waits = served[served.service_start_date.between(w, t, inclusive="left")].waiting_time
    out = {}
    for quantity, (metric, value) in tail_quantities(scenario).items():
        if metric.startswith("wait_p"):
            out[quantity] = float(np.quantile(waits, value))
        else:
            out[quantity] = float((waits > value).mean())
    return out


def _timeouts(records: pd.DataFrame, timeout: float, w: float, t: float) -> dict[str, float]:
    """Abandonment in queue (over jobs leaving the queue in [w, t)) and the client's view:
    a client gives up at arrival + timeout unless its answer came first (the server still
    finishes a job whose client left during service, as in the lab)."""
    reneged = records[records.record_type == "renege"]
    served = records[records.record_type == "service"]
    n_reneged = int(reneged.exit_date.between(w, t, inclusive="left").sum())
    n_started = int(served.service_start_date.between(w, t, inclusive="left").sum())
    client_end = np.minimum(records.exit_date, records.arrival_date + timeout)
    late = (records.record_type == "renege") | (records.exit_date - records.arrival_date > timeout)
    ended = client_end.between(w, t, inclusive="left")
    return {"P(abandon in queue)": n_reneged / (n_reneged + n_started),
            "P(client timeout)": float((late & ended).sum() / ended.sum())}


def _waits(served: pd.DataFrame, w: float, t: float, label: str = "") -> dict[str, float]:
    """Mean wait and P(wait) of jobs starting service in [w, t)."""
    started = served[served.service_start_date.between(w, t, inclusive="left")]
    return {f"{label}Wq (s)": float(started.waiting_time.mean()),
            f"{label}P(wait)": float((started.waiting_time > 0).mean())}


def _ciw_tandem(scenario: Scenario, seed: int) -> dict[str, float]:
    import ciw

    tiers, lam = tandem_tiers(scenario), scenario.workload.total_rate()
    w, t = scenario.run.warmup, scenario.run.duration
    records, _ = _ciw_records(lambda: ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam), None, None],
        service_distributions=[_ciw_dist(d) for _, _, d in tiers],
        number_of_servers=[c for _, c, _ in tiers],
        routing=[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
    ), seed, t)
    out = {}
    for node, (name, _, _) in enumerate(tiers, start=1):
        out[f"{name} Wq (s)"] = _waits(records[records.node == node], w, t)["Wq (s)"]
    first = records[records.node == 1].set_index("id_number").arrival_date
    last = records[(records.node == 3) & records.exit_date.between(w, t, inclusive="left")]
    out["mean latency (s)"] = float((last.exit_date - first.loc[last.id_number].values).mean())
    return out


def _ciw_az_loss(scenario: Scenario, seed: int) -> dict[str, float]:
    import ciw

    topo, lam, run = scenario.topology, scenario.workload.total_rate(), scenario.run
    zones, c = len(topo.zones), topo.engine.workers_per_zone
    loss = the_loss(scenario)
    lost = topo.zones.index(loss.zone)
    detected, horizon = detection_time(scenario, loss), run.duration + _slack(scenario)

    def build() -> Any:
        # Until detection every zone gets λ/zones; after it the survivors share λ and
        # the lost zone gets nothing. Its servers go to 0 at the loss; 'resample'
        # pre-emption puts the jobs in service back in its queue, where they stay: the
        # jobs the lab fails as "unavailable".
        after = [0.0 if z == lost else lam / (zones - 1) for z in range(zones)]
        return ciw.create_network(
            arrival_distributions=[ciw.dists.PoissonIntervals(
                [lam / zones, after[z]], [detected, horizon], horizon) for z in range(zones)],
            service_distributions=[_ciw_dist(topo.engine.service_time)] * zones,
            number_of_servers=[
                ciw.Schedule([c, 0], [loss.at, 10.0 * horizon], preemption="resample")
                if z == lost else c for z in range(zones)],
            routing=[[0.0] * zones for _ in range(zones)],
        )

    records, simulation = _ciw_records(build, seed, horizon)
    served = records[records.record_type == "service"]
    spans = az_spans(scenario)
    after = _waits(served, *spans["after"])
    return {
        "Wq before loss (s)": _waits(served, *spans["before"])["Wq (s)"],
        "Wq after loss (s)": after["Wq (s)"],
        "Wq 2 min after loss (s)": _waits(served, *spans["transient"])["Wq (s)"],
        "P(wait) after loss": after["P(wait)"],
        "requests failed by loss": float(len(simulation.nodes[lost + 1].all_individuals)),
    }


def _ciw_router(policy: str, destinations: list[int]) -> Any:
    """Ciw's routers for the lab's policies. Ciw's ``LoadBalancing`` counts everyone at
    a node (queued and in service), as the lab counts a zone's outstanding attempts."""
    import random

    import ciw

    class PowerOfTwo(ciw.routing.NodeRouting):  # type: ignore[misc]
        """Two distinct destinations at random (Ciw's global ``random``, which
        ``ciw.seed`` seeds); the one with fewer individuals, the first on a tie."""

        def next_node(self, ind: Any) -> Any:
            a, b = random.sample(destinations, 2)
            nodes = self.simulation.nodes
            return nodes[a] if nodes[a].number_of_individuals <= nodes[b].number_of_individuals \
                else nodes[b]

    if policy == "random":
        share = 1.0 / len(destinations)
        return ciw.routing.Probabilistic(destinations, [share] * len(destinations))
    if policy == "round_robin":
        return ciw.routing.Cycle(destinations)
    if policy == "least_outstanding":
        return ciw.routing.LoadBalancing(destinations, tie_break="random")
    return PowerOfTwo()


def _ciw_balancing(scenario: Scenario, seed: int) -> dict[str, float]:
    """A dispatcher node (no service time, unlimited servers) routes each arrival to
    one of the zones' M/M/c nodes by the scenario's policy."""
    import ciw

    topo, lam = scenario.topology, scenario.workload.total_rate()
    w, t = scenario.run.warmup, scenario.run.duration
    zones, c = len(topo.zones), topo.engine.workers_per_zone
    destinations = list(range(2, zones + 2))
    records, _ = _ciw_records(lambda: ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)] + [None] * zones,
        service_distributions=[ciw.dists.Deterministic(value=0.0)]
        + [_ciw_dist(topo.engine.service_time)] * zones,
        number_of_servers=[math.inf] + [c] * zones,
        routing=ciw.routing.NetworkRouting(
            routers=[_ciw_router(topo.gateway.routing, destinations)]
            + [ciw.routing.Leave() for _ in range(zones)]),
    ), seed, t + _slack(scenario))
    served = records[(records.record_type == "service") & (records.node > 1)]
    out = _waits(served, w, t)
    busy = (np.minimum(served.service_end_date, t) - np.maximum(served.service_start_date, w))
    out["utilisation"] = float(busy.clip(lower=0).sum() / (zones * c * (t - w)))
    return out


def ciw_readme_check(seed: int = 1) -> float:
    """Ciw's README example (M/M/3, λ = 0.2, μ = 0.1, 1440 time units, seed 1) through
    this module's driver: the mean wait must be :data:`CIW_README_WAIT`."""
    scenario = load_scenario(TEXTBOOK / "mmc.yaml", overrides=[
        "topology.engine.workers_per_zone=3", "workload.tenants.acme.rate=0.2/s",
        "topology.engine.service_time={dist: exponential, mean: 10s}",
        "run.duration=1440s", "run.warmup=0s", "run.window=1440s"])
    import ciw

    engine = scenario.topology.engine
    records, _ = _ciw_records(lambda: ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=scenario.workload.total_rate())],
        service_distributions=[_ciw_dist(engine.service_time)],
        number_of_servers=[engine.workers_per_zone],
    ), seed, scenario.run.duration)
    return float(records.waiting_time.mean())

