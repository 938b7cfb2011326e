"""The textbook cases: scenario files and ``--set`` overrides, what theory says of each,
and what the lab measures on a run of it.

A case is a scenario file under ``scenarios/textbook/`` plus overrides; its theory and
its quantities are read from the validated scenario (rates, server counts, service
distributions, the fault), never restated here. Three kinds of case: ``station`` (one
engine pool: M/M/c, M/D/1, M/M/c/K, and M/M/c+D when the engine drops queued work whose
client timed out), ``tandem`` (gateway → engine → connector) and
``az_loss`` (zones of M/M/c, one lost mid-run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from labcore.distributions import Constant, Exponential
from labcore.facts import TIER_FIELDS
from labcore.metrics import compute_metrics, wait_label
from labcore.scenario import AzLoss, Scenario
from labcore.scenario_file import load_scenario

from ..model.request import UNAVAILABLE
from ..run import RunResult
from .queueing import StationTheory, md1, mmc, mmc_wait_quantile, mmc_wait_tail, mmck

__all__ = [
    "CASES",
    "balancing_bounds",
    "QUICK",
    "TEXTBOOK",
    "Case",
    "Kind",
    "az_spans",
    "detection_time",
    "lab_quantities",
    "tail_quantities",
    "tandem_tiers",
    "the_loss",
    "theory",
]

TEXTBOOK = Path(__file__).resolve().parent.parent.parent / "scenarios" / "textbook"
Kind = Literal["station", "tandem", "az_loss", "balancing"]


@dataclass(frozen=True)
class Case:
    """A textbook scenario file under ``scenarios/textbook/`` and ``--set`` overrides."""

    name: str
    file: str
    overrides: tuple[str, ...] = ()
    kind: Kind = "station"

    def scenario(self, extra: Sequence[str] = ()) -> Scenario:
        return _load(self.file, self.overrides + tuple(extra))


@lru_cache(maxsize=64)
def _load(file: str, overrides: tuple[str, ...]) -> Scenario:
    return load_scenario(TEXTBOOK / file, overrides=overrides)


def _mmc(c: int, rate: str, *more: str) -> tuple[str, ...]:
    return (f"topology.engine.workers_per_zone={c}", f"workload.tenants.acme.rate={rate}", *more)


CASES: tuple[Case, ...] = (
    Case("M/M/1, rho 0.5", "mmc.yaml", _mmc(1, "0.5/s")),
    Case("M/M/3, rho 0.7", "mmc.yaml", _mmc(3, "2.1/s")),
    Case("M/M/8, rho 0.8", "mmc.yaml"),
    Case("M/M/16, rho 0.9", "mmc.yaml", _mmc(16, "14.4/s")),
    Case("M/D/1, rho 0.8", "mmc.yaml", _mmc(1, "1/s", "topology.engine.service_time=800ms")),
    Case("M/M/8 wait tail, rho 0.8", "mmc.yaml", ("run.wait_histograms=true",)),
    Case("M/M/4/10, a 4.5", "mmck.yaml"),
    Case("M/M/4+D, rho 1.1", "mmc.yaml", _mmc(4, "4.4/s", "topology.gateway.timeout=2s",
                                              "topology.engine.drop_expired=true")),
    Case("tandem gw>eng>conn", "tandem.yaml", kind="tandem"),
    Case("AZ loss, 3x M/M/6", "az_loss.yaml", kind="az_loss"),
    *(Case(f"LB {policy}, 3x M/M/8", "balancing.yaml", (f"topology.gateway.routing={policy}",),
           kind="balancing")
      for policy in ("random", "round_robin", "least_outstanding", "power_of_two")),
)
#: Shorter runs for the test suite: same cases, wider intervals, same rule.
QUICK = ("run.duration=1000s", "run.warmup=100s")


# --------------------------------------------------------------------------- theory


def _station_theory(c: int, limit: int | None, lam: float, dist: Any) -> StationTheory | None:
    """The closed form for a station, or ``None`` where there is none."""
    if isinstance(dist, Exponential):
        mu = 1.0 / dist.mean
        return mmc(c, lam, mu) if limit is None else mmck(c, c + limit, lam, mu)
    if isinstance(dist, Constant) and c == 1 and limit is None:
        return md1(lam, dist.mean)
    return None


def detection_time(scenario: Scenario, loss: AzLoss) -> float:
    """When the load balancer marks the lost zone down: the ``failure_threshold``-th
    health check after the loss (checks run every ``interval`` from time 0)."""
    check = scenario.topology.gateway.health_check
    ticks = loss.at / check.interval
    if math.isclose(ticks, round(ticks)):
        raise ValueError("the loss coincides with a health check: their order is ambiguous")
    return (math.floor(ticks) + check.failure_threshold) * check.interval


def theory(kind: Kind, scenario: Scenario) -> dict[str, float | None]:
    """The closed-form value of each quantity of the case (``None``: no closed form)."""
    topo, lam = scenario.topology, scenario.workload.total_rate()
    engine = topo.engine
    if kind == "station" and engine.drop_expired:
        # Queued jobs abandon at the client timeout (M/M/c+D): Ciw is the oracle.
        return dict.fromkeys(("P(wait)", "Wq (s)", "utilisation", "P(abandon in queue)",
                              "P(client timeout)"))
    if kind == "station":
        st = _station_theory(engine.workers_per_zone, engine.queue_limit, lam, engine.service_time)
        out = _station_values(st)
        if engine.queue_limit is None:
            out.pop("P(block)")
        if scenario.run.wait_histograms:
            out.update(_tail_theory(scenario, st is not None and engine.queue_limit is None))
        return out
    if kind == "balancing":
        return _balancing_theory(scenario)
    if kind == "tandem":
        tiers = tandem_tiers(scenario)
        values = [mmc(c, lam, 1.0 / d.mean) for _, c, d in tiers]
        out = {f"{name} Wq (s)": v.wq for (name, _, _), v in zip(tiers, values)}
        out["mean latency (s)"] = sum(v.wq + d.mean for (_, _, d), v in zip(tiers, values))
        return out
    loss = the_loss(scenario)
    zones, c = len(topo.zones), engine.workers_per_zone
    before = mmc(c, lam / zones, 1.0 / engine.service_time.mean)
    caught = lam / zones * (before.wq + engine.service_time.mean)  # Little: L in the zone
    lost = caught + lam / zones * (detection_time(scenario, loss) - loss.at)
    return {"Wq before loss (s)": before.wq, "Wq after loss (s)": None,
            "Wq 2 min after loss (s)": None, "P(wait) after loss": None,
            "requests failed by loss": lost}


def balancing_bounds(scenario: Scenario) -> tuple[float, float]:
    """Mean waits that bound every balancing policy here: one pooled M/M/(zones·c)
    queue (no policy of per-zone queues does better with exponential service) and
    independent M/M/c zones at λ/zones (uniform random routing, no information)."""
    zones, c, lam, mu = _zoned(scenario)
    return mmc(zones * c, lam, mu).wq, mmc(c, lam / zones, mu).wq


def _zoned(scenario: Scenario) -> tuple[int, int, float, float]:
    topo = scenario.topology
    return (len(topo.zones), topo.engine.workers_per_zone, scenario.workload.total_rate(),
            1.0 / topo.engine.service_time.mean)


def _balancing_theory(scenario: Scenario) -> dict[str, float | None]:
    """Random routing splits a Poisson stream into independent M/M/c zones (Erlang C);
    the other policies have no closed form here (Ciw is the oracle, the bounds of
    :func:`balancing_bounds` a sanity check)."""
    if scenario.topology.gateway.routing != "random":
        return {"P(wait)": None, "Wq (s)": None, "utilisation": None}
    zones, c, lam, mu = _zoned(scenario)
    st = mmc(c, lam / zones, mu)
    return {"P(wait)": st.p_wait, "Wq (s)": st.wq, "utilisation": st.utilization}


def tail_quantities(scenario: Scenario) -> dict[str, tuple[str, float]]:
    """Wait-tail quantity → (its metric suffix, its parameter: a quantile or an ``x``)."""
    out = {"Wq p95 (s)": ("wait_p95", 0.95), "Wq p99 (s)": ("wait_p99", 0.99)}
    for x in scenario.run.wait_over:
        out[f"P(wait > {wait_label(x)})"] = (f"p_wait_over_{wait_label(x)}", x)
    return out


def _tail_theory(scenario: Scenario, closed_form: bool) -> dict[str, float | None]:
    """Erlang C's wait tail for an M/M/c engine pool (no closed form otherwise here)."""
    engine, lam = scenario.topology.engine, scenario.workload.total_rate()
    c = engine.workers_per_zone
    out: dict[str, float | None] = {}
    for quantity, (metric, value) in tail_quantities(scenario).items():
        if not (closed_form and isinstance(engine.service_time, Exponential)):
            out[quantity] = None
        elif metric.startswith("wait_p"):
            out[quantity] = mmc_wait_quantile(c, lam, 1.0 / engine.service_time.mean, value)
        else:
            out[quantity] = mmc_wait_tail(c, lam, 1.0 / engine.service_time.mean, value)
    return out


def _station_values(st: StationTheory | None) -> dict[str, float | None]:
    if st is None:
        return dict.fromkeys(("P(wait)", "Wq (s)", "utilisation", "P(block)"))
    return {"P(wait)": st.p_wait, "Wq (s)": st.wq, "utilisation": st.utilization,
            "P(block)": st.p_block}


def tandem_tiers(scenario: Scenario) -> list[tuple[str, int, Any]]:
    topo = scenario.topology
    (provider,) = topo.providers.values()
    return [("gateway", topo.gateway.workers_per_zone, topo.gateway.service_time),
            ("engine", topo.engine.workers_per_zone, topo.engine.service_time),
            ("connector", topo.connectors.workers_per_zone, provider.latency)]


def the_loss(scenario: Scenario) -> AzLoss:
    losses = [f for f in scenario.faults if isinstance(f, AzLoss)]
    if len(losses) != 1 or len(scenario.faults) != 1:
        raise ValueError("the az_loss case needs exactly one fault, an az_loss")
    return losses[0]


# --------------------------------------------------------------------------- the lab


def lab_quantities(kind: Kind, scenario: Scenario, result: RunResult) -> dict[str, float]:
    """The case's quantities measured on one lab run."""
    if kind == "balancing":
        m = compute_metrics(result)
        return {"P(wait)": float(m["engine.wait_probability"]),  # type: ignore[arg-type]
                "Wq (s)": float(m["engine.queue_wait_mean"]),  # type: ignore[arg-type]
                "utilisation": float(m["engine.utilization"])}  # type: ignore[arg-type]
    if kind == "station":
        m = compute_metrics(result)
        out = {"P(wait)": m["engine.wait_probability"], "Wq (s)": m["engine.queue_wait_mean"],
               "utilisation": m["engine.utilization"]}
        if scenario.topology.engine.queue_limit is not None:
            out["P(block)"] = m["errors.overload"]
        if scenario.topology.engine.drop_expired:
            out["P(abandon in queue)"] = _abandoned(scenario, result)
            out["P(client timeout)"] = m["errors.timeout"]
        if scenario.run.wait_histograms:
            for quantity, (metric, _) in tail_quantities(scenario).items():
                out[quantity] = m[f"engine.{metric}"]
        return {k: float(v) for k, v in out.items() if v is not None}
    if kind == "tandem":
        m = compute_metrics(result)
        out = {f"{t} Wq (s)": m[f"{t}.queue_wait_mean"] for t in ("gateway", "engine", "connector")}
        out["mean latency (s)"] = m["latency_mean"]
        return {k: float(v) for k, v in out.items() if v is not None}
    return _lab_az_loss(scenario, result)


def _abandoned(scenario: Scenario, result: RunResult) -> float:
    """Jobs the engine skipped because their client had timed out, over the jobs that
    left its queue (skipped or started) in the measured windows."""
    a = result.arrays
    rows = a["tiers"][a["start"] >= scenario.run.warmup - 1e-9, a["tier_names"].index("engine")]
    dropped = rows[:, TIER_FIELDS.index("dropped")].sum()
    return float(dropped / (dropped + rows[:, TIER_FIELDS.index("started")].sum()))


def _lab_az_loss(scenario: Scenario, result: RunResult) -> dict[str, float]:
    a = result.arrays
    tiers = a["tiers"][:, a["tier_names"].index("engine"), :]
    start, window = a["start"], scenario.run.window
    started, waited = TIER_FIELDS.index("started"), TIER_FIELDS.index("waited")
    wait_sum = TIER_FIELDS.index("wait_sum")

    def over(t0: float, t1: float, field: int) -> float:
        mask = (start >= t0 - 1e-9) & (start + window <= t1 + 1e-9)
        rows = tiers[mask]
        return float(rows[:, field].sum() / rows[:, started].sum())

    spans = az_spans(scenario)
    return {
        "Wq before loss (s)": over(*spans["before"], wait_sum),
        "Wq after loss (s)": over(*spans["after"], wait_sum),
        "Wq 2 min after loss (s)": over(*spans["transient"], wait_sum),
        "P(wait) after loss": over(*spans["after"], waited),
        "requests failed by loss": float(a["outcomes"][:, :, UNAVAILABLE].sum()),
    }


def az_spans(scenario: Scenario) -> dict[str, tuple[float, float]]:
    """Measured intervals, on window boundaries, that both simulators use."""
    run, loss = scenario.run, the_loss(scenario)
    w = run.window
    before_end = math.floor(loss.at / w) * w
    after_start = math.ceil(loss.at / w) * w
    return {"before": (run.warmup, before_end), "after": (after_start, run.duration),
            "transient": (after_start, min(run.duration, after_start + 120.0))}

