"""The load plan: rates from the scenario's profile, users per kind, ticks, arrivals."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from lt_helpers import SURGE, baseline

from loadtests.shapes import ArrivalStream, PlanError, build_plan, tenant_kinds


def test_standin_baseline_is_20_per_second_from_20_normal_users() -> None:
    plan = build_plan(baseline(), per_user_rate=1.0)
    assert set(plan.kinds) == {"normal"}
    normal = plan.kinds["normal"]
    assert normal.tenants == ("acme", "globex", "initech", "umbrella")
    # 1,000/s x 2%: acme 8, globex 6, initech 4, umbrella 2
    assert normal.tenant_rates(0.0) == pytest.approx([8.0, 6.0, 4.0, 2.0])
    assert (normal.peak, normal.users, normal.bound) == (pytest.approx(20.0), 20,
                                                         pytest.approx(1.0))
    assert plan.tick(0.0) == (20, 20.0, ("normal",))
    assert plan.tick(59.9) is not None and plan.tick(60.0) is None


def test_default_users_cover_every_request_running_into_the_timeout() -> None:
    """Little's law on the longest a query can take: baseline's client makes 3 attempts
    of at most 5 s with backoffs capped at 2 s, 19 s in all; 20/s needs 380 users."""
    plan = build_plan(baseline())
    assert plan.users == 380 and plan.kinds["normal"].bound == pytest.approx(1 / 19)
    assert build_plan(baseline("topology.gateway.timeout=2s")).users == 20 * (3 * 2 + 2 * 2)
    one_attempt = "topology.gateway.retries={max_attempts: 1}"
    assert build_plan(baseline(one_attempt)).users == 100  # 20/s x 5 s


def test_surge_tenant_is_noisy_and_its_rate_follows_the_fault() -> None:
    scenario = baseline(SURGE)
    assert tenant_kinds(scenario) == {"acme": "normal", "globex": "normal",
                                      "initech": "normal", "umbrella": "noisy"}
    plan = build_plan(scenario, per_user_rate=2.0)
    noisy = plan.kinds["noisy"]
    assert noisy.tenants == ("umbrella",)
    assert [noisy.rate(t) for t in (5.0, 10.0, 12.0, 14.0, 29.0, 30.0)] == pytest.approx(
        [2.0, 2.0, 11.0, 20.0, 20.0, 2.0])  # ramp 2 -> 20 over 4 s, back at the end
    assert noisy.peak == pytest.approx(20.0) and noisy.users == 10
    assert plan.kinds["normal"].users == 9  # ceil(18 / 2)
    assert plan.tick(0.0) == (19, 19.0, ("normal", "noisy"))


def test_profile_points_scale_the_rate_like_the_simulator() -> None:
    scenario = baseline("workload.profile=[{at: 0s, scale: 0.5}, {at: 30s, scale: 1.5}]")
    plan = build_plan(scenario, per_user_rate=1.0)
    assert plan.rate(0.0) == pytest.approx(10.0)
    assert plan.rate(15.0) == pytest.approx(20.0)
    assert plan.rate(45.0) == pytest.approx(30.0)
    assert plan.users == 30  # sized for the peak
    assert [row[2] for row in plan.table(30.0)] == pytest.approx([10.0, 30.0, 30.0])


def test_run_time_caps_the_plan_and_bad_plans_are_refused() -> None:
    assert build_plan(baseline(), duration=15.0).tick(15.0) is None
    assert build_plan(baseline(profile=None)).users == 19_000  # 1,000/s x 19 s: distribute it
    with pytest.raises(PlanError, match="per-user-rate"):
        build_plan(baseline(), per_user_rate=0.0)
    with pytest.raises(PlanError, match="sends nothing"):
        build_plan(baseline("workload.scale=0"))
    with pytest.raises(PlanError, match="users"):
        build_plan(baseline(profile=None), per_user_rate=0.04)  # 1,000/s -> 25,000 users


def _arrivals(plan_kind, users: int, until: float, seed: int) -> list[tuple[float, str]]:
    out = []
    for u in range(users):
        stream = ArrivalStream(plan_kind, random.Random(seed * 1000 + u))
        while stream.due < until:
            at, tenant = stream.advance()
            if tenant is not None:
                out.append((at, tenant))
    return out


def test_users_superpose_to_the_scenario_rates_per_tenant() -> None:
    """Level 3: counts per tenant and per phase agree with the rate integral (Poisson)."""
    plan = build_plan(baseline(SURGE, "run.duration=40s"))
    events = _arrivals(plan.kinds["normal"], plan.kinds["normal"].users, 40.0, seed=1)
    events += _arrivals(plan.kinds["noisy"], plan.kinds["noisy"].users, 40.0, seed=2)
    expected = {  # integral of the rate over [0, 40 s)
        "acme": 8 * 40, "globex": 6 * 40, "initech": 4 * 40,
        "umbrella": 2 * 20 + (2 + 20) / 2 * 4 + 20 * 16,
    }
    for tenant, mean in expected.items():
        n = sum(1 for _, t in events if t == tenant)
        assert abs(n - mean) < 4 * math.sqrt(mean), (tenant, n, mean)
    flood = sum(1 for at, t in events if t == "umbrella" and 14.0 <= at < 30.0)
    assert abs(flood - 320) < 4 * math.sqrt(320)


def test_arrival_gaps_are_exponential_with_the_planned_mean() -> None:
    plan = build_plan(baseline(), per_user_rate=1.0)
    stream = ArrivalStream(plan.kinds["normal"], random.Random(7))
    times = [stream.advance()[0] for _ in range(20_000)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(1.0, rel=0.03)  # bound = 1/s per user
    share_short = sum(g < 1.0 for g in gaps) / len(gaps)
    assert share_short == pytest.approx(1 - math.exp(-1), abs=0.015)


def test_a_diurnal_profile_is_a_cosine_between_trough_and_peak() -> None:
    plan = build_plan(baseline("workload.profile={period: 60s, peak_at: 30s, trough: 40%}"),
                      per_user_rate=1.0)
    assert plan.rate(30.0) == pytest.approx(20.0)  # the peak
    assert plan.rate(0.0) == pytest.approx(8.0)  # half a period away: 40%
    assert plan.rate(15.0) == pytest.approx(14.0)  # half-way up
    assert plan.users == 20  # sized for the peak
