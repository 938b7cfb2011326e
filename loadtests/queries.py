"""The query mix: which SQL each request sends, with hot and cold keys.

Like the simulator, a tenant's request picks a ``connector.object`` target from the
tenant's ``mix`` and then a cache key by Zipf popularity over ``topology.cache.keys``
ranks with exponent ``zipf_s`` (``sim.model.workload.zipf_cdf``). Rank ``r`` of a target
is one distinct query (so one distinct cache key in the sandbox, whose key is a digest of
columns, filter and limit)::

    SELECT * FROM crm.accounts WHERE id = <r mod rows + 1> LIMIT <r div rows + 1>

Requests are grouped in Locust's statistics as ``<target> [hot]`` or ``<target> [cold]``:
``hot`` ranks are the most popular ones that together draw half of the target's traffic.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from labcore.scenario import Scenario
from sim.model.workload import zipf_cdf

__all__ = ["CATALOG", "Query", "QueryError", "QueryMix", "hot_ranks"]

#: What the sandbox serves: ``connector.object`` → rows (see docs/sandbox.md).
CATALOG: dict[str, int] = {"crm.accounts": 500, "crm.contacts": 1000, "tickets.tickets": 2000}
MAX_LIMIT = 1000


class QueryError(ValueError):
    """A mix the target cannot serve (an object it does not have, too many keys)."""


@dataclass(frozen=True)
class Query:
    """One request: tenant, end user, SQL and its statistics group name."""

    tenant: str
    user: str
    sql: str
    name: str


def hot_ranks(cdf: list[float], share: float = 0.5) -> int:
    """How many top ranks draw ``share`` of the traffic (at least one)."""
    return bisect.bisect_left(cdf, share) + 1


class QueryMix:
    """Draws queries for a scenario's tenants against a catalogue of objects."""

    def __init__(self, scenario: Scenario, catalog: dict[str, int] | None = None) -> None:
        catalog = CATALOG if catalog is None else catalog
        cache = scenario.topology.cache
        self.cdf = zipf_cdf(cache.keys, cache.zipf_s)
        self.hot = hot_ranks(self.cdf)
        self.tenants: dict[str, tuple[list[str], list[float], int]] = {}
        for name, tenant in scenario.workload.tenants.items():
            targets = list(tenant.mix)
            for target in targets:
                _check_target(target, catalog, cache.keys)
            shares = list(tenant.mix.values())
            cum = [sum(shares[: i + 1]) for i in range(len(shares))]
            cum[-1] = 1.0
            self.tenants[name] = (targets, cum, tenant.users)
        self.rows = catalog

    def draw(self, tenant: str, rng: random.Random) -> Query:
        targets, cum, users = self.tenants[tenant]
        target = targets[min(bisect.bisect_right(cum, rng.random()), len(targets) - 1)]
        rank = min(bisect.bisect_right(self.cdf, rng.random()), len(self.cdf) - 1)
        user = f"u{int(rng.random() * users) + 1}"
        temperature = "hot" if rank < self.hot else "cold"
        return Query(tenant, user, self.sql(target, rank), f"{target} [{temperature}]")

    def sql(self, target: str, rank: int) -> str:
        rows = self.rows[target]
        return f"SELECT * FROM {target} WHERE id = {rank % rows + 1} LIMIT {rank // rows + 1}"


def _check_target(target: str, catalog: dict[str, int], keys: int) -> None:
    if target not in catalog:
        raise QueryError(
            f"mix target {target!r} is not served by the target system "
            f"(it has {', '.join(sorted(catalog))})"
        )
    if keys > catalog[target] * MAX_LIMIT:
        raise QueryError(f"cache.keys {keys} exceeds the distinct queries {target} can express")
