"""A scenario's workload as a load plan: rates over time, user counts, the shape's ticks.

The scenario's workload is open-loop Poisson: tenant ``i`` sends at
``rate_i × workload.scale × profile(t) × surge_i(t)``, the very
:class:`labcore.workload.RateFunction` the simulator draws from. Locust users are
closed loops (one request in flight each), so the plan maps rate to users like this:

* tenants are split into two kinds: ``noisy`` (a tenant with a ``traffic_surge`` fault)
  and ``normal`` (the rest); each kind is one Locust user class;
* a kind gets ``N = ceil(peak rate / per_user_rate)`` users, all spawned at the start
  and kept until the end (the shape's ticks). The default ``per_user_rate`` is one over
  the longest a query can take (:func:`labcore.retries.longest_request`: every attempt
  running into ``topology.gateway.timeout``, plus the largest backoffs; 1/19 s with 3
  attempts of 5 s and a 2 s cap): by Little's law ``N = peak × longest`` users cover every
  request in flight even if each one runs into the client timeout on every attempt, so
  overload shows as latency and errors, not as a load generator that falls behind and
  catches up after the overload (one user per 5 s of timeout, without the retries, made
  rate_limit_flood's users send their backlog for 4 minutes after the flood);
* every user draws candidate arrivals at the bound ``peak / N`` with exponential gaps
  scheduled on the clock, not after the response (a Poisson ``constant_pacing``), and
  keeps a candidate at time ``t`` with probability ``rate(t) / peak`` (thinning, as the
  simulator does). The superposition of the ``N`` users is then a Poisson process at
  exactly the kind's rate ``R(t)``, and each request's tenant is drawn with probability
  ``rate_i(t) / R(t)``: the per-tenant streams are Poisson at their scenario rates.

A user whose request outlives its next scheduled arrival sends the late one as soon as
it can (catch-up), so the rate holds while ``N`` exceeds the requests in flight
(Little: ``R × latency``); the recorder counts late sends (``loadgen.late``) so a
shortfall is visible rather than silent.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from labcore.retries import longest_request
from labcore.scenario import Scenario, TrafficSurge
from labcore.workload import RateFunction

__all__ = [
    "KINDS",
    "ArrivalStream",
    "Kind",
    "KindPlan",
    "LoadPlan",
    "PlanError",
    "build_plan",
    "default_per_user_rate",
    "tenant_kinds",
]

Kind = Literal["normal", "noisy"]
KINDS: tuple[Kind, ...] = ("normal", "noisy")
#: More users than this in one plan is refused (raise --per-user-rate).
MAX_USERS = 20_000


class PlanError(ValueError):
    """The scenario's workload cannot be expressed as a Locust load."""


def tenant_kinds(scenario: Scenario) -> dict[str, Kind]:
    """``noisy`` for tenants with a ``traffic_surge`` fault (every tenant for
    ``tenant: "*"``), ``normal`` for the others."""
    surges = [f for f in scenario.faults if isinstance(f, TrafficSurge)]
    return {name: ("noisy" if any(f.applies_to(name) for f in surges) else "normal")
            for name in scenario.workload.tenants}


@dataclass(frozen=True)
class KindPlan:
    """One user class: its tenants' rate functions, users and per-user arrival bound."""

    kind: Kind
    tenants: tuple[str, ...]
    rates: tuple[RateFunction, ...]
    peak: float
    users: int

    @property
    def bound(self) -> float:
        """Candidate arrivals per second and user: ``peak / users`` (0 with no users)."""
        return self.peak / self.users if self.users else 0.0

    def rate(self, t: float) -> float:
        """The kind's total offered rate at scenario time ``t``."""
        return sum(r(t) for r in self.rates)

    def tenant_rates(self, t: float) -> list[float]:
        return [r(t) for r in self.rates]


@dataclass(frozen=True)
class LoadPlan:
    """The whole load: one :class:`KindPlan` per kind with users, and the run's length."""

    scenario: Scenario
    kinds: dict[Kind, KindPlan]
    duration: float
    spawn_rate: float

    @property
    def users(self) -> int:
        return sum(k.users for k in self.kinds.values())

    def rate(self, t: float) -> float:
        return sum(k.rate(t) for k in self.kinds.values())

    def tenant_rate(self, tenant: str, t: float) -> float:
        for k in self.kinds.values():
            if tenant in k.tenants:
                return k.rates[k.tenants.index(tenant)](t)
        raise KeyError(tenant)

    def tick(self, t: float) -> tuple[int, float, tuple[Kind, ...]] | None:
        """What the LoadTestShape returns at run time ``t``: all users until the end."""
        if t >= self.duration:
            return None
        kinds = tuple(kind for kind in KINDS if kind in self.kinds and self.kinds[kind].users)
        return self.users, self.spawn_rate, kinds

    def table(self, step: float) -> list[tuple[float, int, float]]:
        """``(t, users, offered rate)`` every ``step`` seconds: the shape, for docs and plots."""
        n = math.floor(self.duration / step) + 1
        return [(i * step, self.users, self.rate(i * step)) for i in range(n)]


def _peak(rate: RateFunction) -> float:
    """The largest rate over the run: segment bounds are exact maxima of a linear profile."""
    return max((bound for _, _, bound, _ in rate.segments), default=0.0)


def default_per_user_rate(scenario: Scenario) -> float:
    """One over the longest a query can take (see the module docstring)."""
    gateway = scenario.topology.gateway
    return 1.0 / longest_request(gateway.timeout, gateway.retries)


def build_plan(
    scenario: Scenario, per_user_rate: float | None = None, duration: float | None = None
) -> LoadPlan:
    """Size the users of each kind for ``scenario``; ``duration`` caps the run (``-t``).

    ``per_user_rate`` defaults to one over the longest query (see the module docstring).
    """
    if per_user_rate is None:
        per_user_rate = default_per_user_rate(scenario)
    if not per_user_rate > 0:
        raise PlanError(f"--per-user-rate must be positive, got {per_user_rate:g}")
    kinds = tenant_kinds(scenario)
    wl = scenario.workload
    plans: dict[Kind, KindPlan] = {}
    for kind in KINDS:
        names = tuple(n for n in wl.tenants if kinds[n] == kind)
        if not names:
            continue
        rates = tuple(RateFunction(wl.tenants[n].rate * wl.scale, scenario, n) for n in names)
        peak = sum(_peak(r) for r in rates)
        users = math.ceil(peak / per_user_rate - 1e-9) if peak > 0 else 0
        plans[kind] = KindPlan(kind, names, rates, peak, users)
    total = sum(p.users for p in plans.values())
    if total == 0:
        raise PlanError("the workload sends nothing (every rate is 0 at this scale)")
    if total > MAX_USERS:
        raise PlanError(
            f"the plan needs {total} users at --per-user-rate {per_user_rate:g}/s "
            f"(more than {MAX_USERS}); raise --per-user-rate or pick a smaller profile"
        )
    length = scenario.run.duration if duration is None else min(duration, scenario.run.duration)
    return LoadPlan(scenario, plans, length, spawn_rate=float(total))


class ArrivalStream:
    """One user's arrivals: candidates at ``bound`` per second, thinned to the plan.

    ``due`` is the next candidate's scheduled time; :meth:`advance` consumes it and says
    which tenant (if any) the arrival belongs to. Because times come from the schedule,
    not from when the previous response returned, ``N`` streams superpose to the kind's
    Poisson process at ``rate(t)`` however long requests take (as long as they keep up).
    """

    def __init__(self, plan: KindPlan, rng: random.Random, start: float = 0.0) -> None:
        if plan.users == 0:
            raise PlanError(f"no users planned for the {plan.kind} tenants")
        self.plan, self.rng = plan, rng
        self.due = start + rng.expovariate(plan.bound)

    def advance(self) -> tuple[float, str | None]:
        """``(time, tenant)`` of the due candidate (tenant None if thinned); schedule the next."""
        at, plan, rng = self.due, self.plan, self.rng
        self.due = at + rng.expovariate(plan.bound)
        rates = plan.tenant_rates(at)
        total = sum(rates)
        if rng.random() * plan.peak >= total:
            return at, None
        pick, acc = rng.random() * total, 0.0
        for name, rate in zip(plan.tenants, rates):
            acc += rate
            if pick < acc:
                return at, name
        return at, plan.tenants[-1]
