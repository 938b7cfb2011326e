"""The query mix: targets by the tenant's shares, Zipf keys, distinct SQL per key."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from lt_helpers import baseline

from labcore.workload import zipf_cdf
from loadtests.queries import CATALOG, QueryError, QueryMix, hot_ranks


def test_hot_ranks_draw_half_the_traffic() -> None:
    assert hot_ranks([0.5, 0.75, 1.0]) == 1
    assert hot_ranks([0.25, 0.5, 0.75, 1.0]) == 2
    cdf = zipf_cdf(5000, 1.1)
    hot = hot_ranks(cdf)
    assert cdf[hot - 1] >= 0.5 > cdf[hot - 2]


def test_each_rank_is_a_distinct_query_the_sandbox_accepts() -> None:
    mix = QueryMix(baseline())
    sqls = {mix.sql("crm.accounts", r) for r in range(5000)}
    assert len(sqls) == 5000
    assert mix.sql("crm.accounts", 0) == "SELECT * FROM crm.accounts WHERE id = 1 LIMIT 1"
    assert mix.sql("crm.accounts", 500) == "SELECT * FROM crm.accounts WHERE id = 1 LIMIT 2"
    assert mix.sql("tickets.tickets", 4999) == (
        "SELECT * FROM tickets.tickets WHERE id = 1000 LIMIT 3")


def test_draws_follow_the_mix_users_and_zipf() -> None:
    mix = QueryMix(baseline())
    rng = random.Random(3)
    draws = [mix.draw("acme", rng) for _ in range(20_000)]
    targets = Counter(q.name.split(" ")[0] for q in draws)
    assert targets["crm.accounts"] / 20_000 == pytest.approx(0.40, abs=0.015)
    assert targets["crm.contacts"] / 20_000 == pytest.approx(0.30, abs=0.015)
    hot = sum(q.name.endswith("[hot]") for q in draws) / 20_000
    assert hot == pytest.approx(mix.cdf[mix.hot - 1], abs=0.015)
    users = Counter(q.user for q in draws)
    assert set(users) == {f"u{i}" for i in range(1, 51)}  # acme has 50 users
    top = Counter(q.sql for q in draws if q.name.startswith("crm.accounts"))
    assert top.most_common(1)[0][0].endswith("WHERE id = 1 LIMIT 1")  # rank 0 is hottest


def test_a_target_the_sandbox_does_not_serve_is_refused() -> None:
    scenario = baseline("topology.providers.crm.objects=[accounts, contacts, leads]",
                        "workload.tenants.umbrella.mix={crm.leads: 100%}")
    with pytest.raises(QueryError, match="crm.leads"):
        QueryMix(scenario)
    with pytest.raises(QueryError, match="distinct queries"):
        QueryMix(baseline(), {**CATALOG, "crm.accounts": 2})
