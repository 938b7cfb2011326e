"""Trust in the model: textbook cases against queueing theory and Ciw.

Each :class:`Case` is a scenario file under ``scenarios/textbook/`` plus ``--set``
overrides: nothing here configures the model any other way. A case is measured three
ways, on the same network with the same parameters, all read from the scenario:

* **theory**: a closed form where one exists (Erlang C for M/M/c, Pollaczek–Khinchine
  for M/D/1, the M/M/c/K birth–death chain, Jackson's theorem for the tandem, Little's
  law for the work caught in a lost zone);
* **Ciw** (an independent queueing-network simulator, its own random numbers): one
  process-local ``ciw.seed()`` set deliberately right before each replication, which
  runs alone in its call (``ciw.seed`` is global);
* **the lab**: :func:`sim.run.simulate` over replications, 95% Student-t interval.

Every estimate is over the same measured interval (``run.warmup`` to ``run.duration``)
and counts the same jobs: waits of jobs *starting* service in it, latencies of requests
*ending* in it. Ciw runs a little past the end so that jobs started before it finish.

Agreement is a statistical test, not a margin: for each quantity the lab's replications
are compared with the theoretical value (one-sample t test) and with Ciw's replications
(Welch two-sample t test). With ``m`` tests in the table, a quantity agrees when all its
p-values are at least ``0.05 / m`` (Bonferroni): if the lab were right everywhere, the
chance that any row says "no" is at most 5%. The tests in ``tests/test_validation.py``
also check the other side: the same rule says "no" to a model that is off by a few
percent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .distributions import Constant, Exponential
from .kernel import derive_seed
from .kernel.recorder import TIER_FIELDS
from .metrics import Estimate, compute_metrics
from .model.request import UNAVAILABLE
from .run import RunResult, replication_seeds, simulate
from .scenario import AzLoss, Scenario
from .scenario_file import load_scenario

__all__ = [
    "CASES",
    "QUICK",
    "Case",
    "Row",
    "StationTheory",
    "add_parser",
    "agreement",
    "ciw_quantities",
    "ciw_readme_check",
    "detection_time",
    "erlang_c",
    "lab_quantities",
    "md1",
    "mmc",
    "mmck",
    "run_command",
    "table",
    "theory",
    "validate",
]

TEXTBOOK = Path(__file__).resolve().parent.parent / "scenarios" / "textbook"
#: Family-wise error rate of the agreement column (Bonferroni over the table's tests).
FAMILY_ALPHA = 0.05
#: Mean wait of Ciw's README example (M/M/3, λ = 0.2, μ = 0.1, seed 1, 1440 time units).
CIW_README_WAIT = 4.230543089827278
Kind = Literal["station", "tandem", "az_loss"]


# --------------------------------------------------------------------------- theory


def erlang_c(c: int, lam: float, mu: float) -> float:
    """P(wait) in an M/M/c queue (Erlang C); requires λ < cμ."""
    a = lam / mu
    rho = a / c
    if rho >= 1.0:
        raise ValueError(f"unstable M/M/{c}: rho = {rho:.3f}")
    below, term = 0.0, 1.0
    for k in range(c):  # term runs through a^k / k!
        below += term
        term *= a / (k + 1)
    top = term / (1.0 - rho)
    return top / (below + top)


@dataclass(frozen=True)
class StationTheory:
    """Steady-state figures of one station; waits are those of admitted jobs."""

    p_wait: float
    wq: float
    utilization: float
    p_block: float = 0.0


def mmc(c: int, lam: float, mu: float) -> StationTheory:
    """M/M/c: Erlang C, Wq = P(wait) / (cμ − λ), utilisation λ / cμ."""
    p_wait = erlang_c(c, lam, mu)
    return StationTheory(p_wait, p_wait / (c * mu - lam), lam / (c * mu))


def mmck(c: int, k: int, lam: float, mu: float) -> StationTheory:
    """M/M/c/K (at most K in the station): blocking p_K, waits of admitted jobs."""
    a, rho = lam / mu, lam / (c * mu)
    weights = [a**n / math.factorial(n) for n in range(c)]
    weights += [a**c / math.factorial(c) * rho ** (n - c) for n in range(c, k + 1)]
    total = sum(weights)
    p = [w / total for w in weights]
    admitted = 1.0 - p[k]
    lq = sum((n - c) * p[n] for n in range(c, k + 1))
    p_wait = sum(p[c:k]) / admitted  # PASTA: an admitted arrival sees c..K-1 present
    return StationTheory(p_wait, lq / (lam * admitted), lam * admitted / (c * mu), p[k])


def md1(lam: float, service: float) -> StationTheory:
    """M/D/1 (Pollaczek–Khinchine): Wq = ρ·D / (2(1 − ρ)); P(wait) = ρ."""
    rho = lam * service
    if rho >= 1.0:
        raise ValueError(f"unstable M/D/1: rho = {rho:.3f}")
    return StationTheory(rho, rho * service / (2.0 * (1.0 - rho)), rho)


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
    if kind == "station":
        st = _station_theory(engine.workers_per_zone, engine.queue_limit, lam, engine.service_time)
        out = _station_values(st)
        if engine.queue_limit is None:
            out.pop("P(block)")
        return out
    if kind == "tandem":
        tiers = _tandem_tiers(scenario)
        values = [mmc(c, lam, 1.0 / d.mean) for _, c, d in tiers]
        out = {f"{name} Wq (s)": v.wq for (name, _, _), v in zip(tiers, values)}
        out["mean latency (s)"] = sum(v.wq + d.mean for (_, _, d), v in zip(tiers, values))
        return out
    loss = _the_loss(scenario)
    zones, c = len(topo.zones), engine.workers_per_zone
    before = mmc(c, lam / zones, 1.0 / engine.service_time.mean)
    caught = lam / zones * (before.wq + engine.service_time.mean)  # Little: L in the zone
    lost = caught + lam / zones * (detection_time(scenario, loss) - loss.at)
    return {"Wq before the loss (s)": before.wq, "Wq after the loss (s)": None,
            "Wq in the 2 min after the loss (s)": None, "P(wait) after the loss": None,
            "requests failed by the loss": lost}


def _station_values(st: StationTheory | None) -> dict[str, float | None]:
    if st is None:
        return dict.fromkeys(("P(wait)", "Wq (s)", "utilisation", "P(block)"))
    return {"P(wait)": st.p_wait, "Wq (s)": st.wq, "utilisation": st.utilization,
            "P(block)": st.p_block}


def _tandem_tiers(scenario: Scenario) -> list[tuple[str, int, Any]]:
    topo = scenario.topology
    (provider,) = topo.providers.values()
    return [("gateway", topo.gateway.workers_per_zone, topo.gateway.service_time),
            ("engine", topo.engine.workers_per_zone, topo.engine.service_time),
            ("connector", topo.connectors.workers_per_zone, provider.latency)]


def _the_loss(scenario: Scenario) -> AzLoss:
    losses = [f for f in scenario.faults if isinstance(f, AzLoss)]
    if len(losses) != 1 or len(scenario.faults) != 1:
        raise ValueError("the az_loss case needs exactly one fault, an az_loss")
    return losses[0]


# --------------------------------------------------------------------------- the lab


def lab_quantities(kind: Kind, scenario: Scenario, result: RunResult) -> dict[str, float]:
    """The case's quantities measured on one lab run."""
    if kind == "station":
        m = compute_metrics(result)
        out = {"P(wait)": m["engine.wait_probability"], "Wq (s)": m["engine.queue_wait_mean"],
               "utilisation": m["engine.utilization"]}
        if scenario.topology.engine.queue_limit is not None:
            out["P(block)"] = m["errors.overload"]
        return {k: float(v) for k, v in out.items() if v is not None}
    if kind == "tandem":
        m = compute_metrics(result)
        out = {f"{t} Wq (s)": m[f"{t}.queue_wait_mean"] for t in ("gateway", "engine", "connector")}
        out["mean latency (s)"] = m["latency_mean"]
        return {k: float(v) for k, v in out.items() if v is not None}
    return _lab_az_loss(scenario, result)


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

    spans = _az_spans(scenario)
    return {
        "Wq before the loss (s)": over(*spans["before"], wait_sum),
        "Wq after the loss (s)": over(*spans["after"], wait_sum),
        "Wq in the 2 min after the loss (s)": over(*spans["transient"], wait_sum),
        "P(wait) after the loss": over(*spans["after"], waited),
        "requests failed by the loss": float(a["outcomes"][:, :, UNAVAILABLE].sum()),
    }


def _az_spans(scenario: Scenario) -> dict[str, tuple[float, float]]:
    """Measured intervals, on window boundaries, that both simulators use."""
    run, loss = scenario.run, _the_loss(scenario)
    w = run.window
    before_end = math.floor(loss.at / w) * w
    after_start = math.ceil(loss.at / w) * w
    return {"before": (run.warmup, before_end), "after": (after_start, run.duration),
            "transient": (after_start, min(run.duration, after_start + 120.0))}


# --------------------------------------------------------------------------- Ciw


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
    return _ciw_az_loss(scenario, seed)


def _ciw_station(scenario: Scenario, seed: int) -> dict[str, float]:
    import ciw

    engine, lam = scenario.topology.engine, scenario.workload.total_rate()
    w, t = scenario.run.warmup, scenario.run.duration
    limit = math.inf if engine.queue_limit is None else engine.queue_limit
    records, _ = _ciw_records(lambda: ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)],
        service_distributions=[_ciw_dist(engine.service_time)],
        number_of_servers=[engine.workers_per_zone],
        queue_capacities=[limit],
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
    return out


def _waits(served: pd.DataFrame, w: float, t: float, label: str = "") -> dict[str, float]:
    """Mean wait and P(wait) of jobs starting service in [w, t)."""
    started = served[served.service_start_date.between(w, t, inclusive="left")]
    return {f"{label}Wq (s)": float(started.waiting_time.mean()),
            f"{label}P(wait)": float((started.waiting_time > 0).mean())}


def _ciw_tandem(scenario: Scenario, seed: int) -> dict[str, float]:
    import ciw

    tiers, lam = _tandem_tiers(scenario), scenario.workload.total_rate()
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
    loss = _the_loss(scenario)
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
    spans = _az_spans(scenario)
    after = _waits(served, *spans["after"])
    return {
        "Wq before the loss (s)": _waits(served, *spans["before"])["Wq (s)"],
        "Wq after the loss (s)": after["Wq (s)"],
        "Wq in the 2 min after the loss (s)": _waits(served, *spans["transient"])["Wq (s)"],
        "P(wait) after the loss": after["P(wait)"],
        "requests failed by the loss": float(len(simulation.nodes[lost + 1].all_individuals)),
    }


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


# --------------------------------------------------------------------------- cases


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
    Case("M/M/4/10, a 4.5", "mmck.yaml"),
    Case("tandem gw>engine>conn", "tandem.yaml", kind="tandem"),
    Case("AZ loss, 3x M/M/6", "az_loss.yaml", kind="az_loss"),
)
#: Shorter runs for the test suite: same cases, wider intervals, same rule.
QUICK = ("run.duration=1000s", "run.warmup=100s")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    """One quantity of one case: the three estimates and the tests between them."""

    case: str
    quantity: str
    theory: float | None
    ciw: tuple[float, ...]
    lab: tuple[float, ...]
    p_theory: float | None = None
    p_ciw: float | None = None
    alpha: float = FAMILY_ALPHA
    agree: bool = field(default=False)

    @property
    def lab_estimate(self) -> Estimate:
        return Estimate(list(self.lab))

    @property
    def ciw_estimate(self) -> Estimate:
        return Estimate(list(self.ciw))

    @property
    def tests(self) -> int:
        return (self.p_theory is not None) + (self.p_ciw is not None)


def _p_one_sample(values: Sequence[float], target: float) -> float:
    arr = np.asarray(values, dtype=float)
    if arr.std(ddof=1) == 0.0:
        return 1.0 if arr[0] == target else 0.0
    return float(stats.ttest_1samp(arr, target).pvalue)


def _p_two_sample(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.std(ddof=1) == 0.0 and y.std(ddof=1) == 0.0:
        return 1.0 if x[0] == y[0] else 0.0
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def agreement(rows: Sequence[Row], family_alpha: float = FAMILY_ALPHA) -> list[Row]:
    """Test every row and decide agreement at ``family_alpha / m`` per test."""
    tested = []
    for row in rows:
        p_theory = None if row.theory is None else _p_one_sample(row.lab, row.theory)
        p_ciw = _p_two_sample(row.lab, row.ciw) if row.ciw else None
        tested.append((row, p_theory, p_ciw))
    m = sum((pt is not None) + (pc is not None) for _, pt, pc in tested)
    alpha = family_alpha / max(1, m)
    return [Row(r.case, r.quantity, r.theory, r.ciw, r.lab, pt, pc, alpha,
                all(p >= alpha for p in (pt, pc) if p is not None) and (pt, pc) != (None, None))
            for r, pt, pc in tested]


def _lab_task(case: Case, extra: tuple[str, ...], seed: int) -> dict[str, float]:
    scenario = case.scenario(extra)
    return lab_quantities(case.kind, scenario, simulate(scenario, seed))


def _ciw_task(case: Case, extra: tuple[str, ...], seed: int) -> dict[str, float]:
    return ciw_quantities(case.kind, case.scenario(extra), seed)


def validate(
    cases: Sequence[Case] = CASES,
    replications: int = 20,
    ciw_replications: int = 10,
    extra: Sequence[str] = (),
    seed: int = 1,
    jobs: int = 1,
) -> list[Row]:
    """Run every case through theory, Ciw and the lab; return the tested rows.

    ``extra`` overrides apply to every case (e.g. :data:`QUICK`)."""
    extra = tuple(extra)
    tasks: list[tuple[Callable[..., dict[str, float]], Case, int]] = []
    for case in cases:
        tasks += [(_lab_task, case, s) for s in replication_seeds(seed, replications)]
        tasks += [(_ciw_task, case, derive_seed(seed, "ciw", case.name, r) % 2**31)
                  for r in range(ciw_replications)]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(fn, case, extra, s) for fn, case, s in tasks]
            results = [f.result() for f in futures]
    else:
        results = [fn(case, extra, s) for fn, case, s in tasks]
    rows = []
    for case in cases:
        lab = [r for (fn, c, _), r in zip(tasks, results) if c is case and fn is _lab_task]
        ciw = [r for (fn, c, _), r in zip(tasks, results) if c is case and fn is _ciw_task]
        expected = theory(case.kind, case.scenario(extra))
        for quantity in lab[0]:
            rows.append(Row(case.name, quantity, expected.get(quantity),
                            tuple(r[quantity] for r in ciw), tuple(r[quantity] for r in lab)))
    return agreement(rows)


# --------------------------------------------------------------------------- output


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}"


def _interval(est: Estimate) -> str:
    if est.mean is None:
        return "—"
    if est.ci_low is None or est.ci_high is None:
        return _fmt(est.mean)
    return f"{_fmt(est.mean)} ± {(est.ci_high - est.ci_low) / 2.0:.2g}"


def table(rows: Sequence[Row]) -> Any:
    """The comparison table (a rich ``Table``)."""
    from rich.table import Table

    out = Table(title="Model validation: theory, Ciw and the lab on the same networks")
    for column in ("case", "quantity", "theory", "Ciw (95% CI)", "lab (95% CI)", "min p",
                   "agree"):
        out.add_column(column, justify="left" if column in ("case", "quantity") else "right",
                       no_wrap=True)
    previous = None
    for row in rows:
        ps = [p for p in (row.p_theory, row.p_ciw) if p is not None]
        out.add_row(row.case if row.case != previous else "", row.quantity, _fmt(row.theory),
                    _interval(row.ciw_estimate), _interval(row.lab_estimate),
                    f"{min(ps):.3f}" if ps else "—",
                    "[green]yes[/green]" if row.agree else "[bold red]no[/bold red]")
        previous = row.case
    return out


def add_parser(sub: Any) -> None:
    """The ``validate-model`` subcommand."""
    parser = sub.add_parser("validate-model", help="check the model against queueing theory "
                            "and Ciw on textbook cases (scenarios/textbook/)")
    parser.add_argument("--replications", "-R", type=int, default=20,
                        help="lab replications per case (default 20)")
    parser.add_argument("--ciw-replications", type=int, default=10,
                        help="Ciw replications per case (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--case", dest="cases", action="append", default=[], metavar="TEXT",
                        help="only cases whose name contains TEXT (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="half-length runs (" + ", ".join(QUICK) + ")")
    parser.add_argument("--jobs", "-j", type=int, default=0,
                        help="worker processes (default: one per core)")


def run_command(args: Any, console: Any) -> int:
    """Run the cases, print the table; exit 0 if every row agrees and Ciw is driven right."""
    import os
    import time

    cases = [c for c in CASES if not args.cases or any(t in c.name for t in args.cases)]
    if not cases or args.replications < 2 or args.ciw_replications < 2:
        console.print("validate-model: need at least one case and 2 replications of each "
                      "simulator", highlight=False)
        return 2
    readme = ciw_readme_check()
    readme_ok = readme == CIW_README_WAIT
    started = time.perf_counter()
    rows = validate(cases, args.replications, args.ciw_replications,
                    QUICK if args.quick else (), args.seed, args.jobs or os.cpu_count() or 1)
    console.width = max(console.width, 120)  # the table needs it; pipes default to 80
    console.print(table(rows))
    tests = sum(r.tests for r in rows)
    console.print(
        f"Agreement: lab vs theory by a one-sample t test, lab vs Ciw by Welch's t test, on "
        f"{args.replications} lab and {args.ciw_replications} Ciw replications per case; "
        f"a row agrees when every p ≥ {FAMILY_ALPHA:g}/{tests} = {rows[0].alpha:.2g} "
        f"(Bonferroni over the table's {tests} tests).", highlight=False)
    console.print(f"Ciw driver check (README M/M/3, seed 1, 1440 time units): mean wait "
                  f"{readme!r}, expected {CIW_README_WAIT!r}: "
                  f"{'ok' if readme_ok else 'MISMATCH'}", highlight=False)
    agreed = sum(r.agree for r in rows)
    console.print(f"{agreed}/{len(rows)} quantities agree; {time.perf_counter() - started:.0f} s",
                  highlight=False)
    return 0 if readme_ok and agreed == len(rows) else 1
