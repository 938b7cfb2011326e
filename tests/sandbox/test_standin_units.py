"""The stand-in from a scenario (issue 18), without a stand-in: worker slots, the provider's
buckets and streams, the configuration's mapping and validation, the CLIs' exit codes."""

from __future__ import annotations

import asyncio
import glob
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labcore.sandbox_client import scenario_body, scenario_label
from labcore.scenario_file import read_scenario
from sandbox.errors import ApiError
from sandbox.provider_config import ProviderSettings, parse_provider_section
from sandbox.sections import connector_section, engine_section, gateway_section
from sandbox.slots import Slots
from sandbox.standin import config_from_scenario, default_config, derive_seed, not_honoured
from sandbox.testing import REPO

TENANTS = ("acme", "globex", "initech", "umbrella")
STANDIN = sorted(p for p in glob.glob(str(REPO / "scenarios" / "*.yaml"))
                 if "standin:" in Path(p).read_text())


async def _hold(slots: Slots, seconds: float, log: list[tuple[str, float]], name: str,
                t0: float) -> None:
    async with slots.hold():
        log.append((name, time.monotonic() - t0))
        await asyncio.sleep(seconds)


def test_slots_queue_beyond_the_workers_in_arrival_order() -> None:
    """Two slots held 0.2 s each by five arrivals: a and b at once, c and d when those end,
    e when c's ends. An event loop can wake late on a busy machine, never early (beyond
    its clock's resolution): the starts are bounded below by the holds before them."""
    async def main() -> list[tuple[str, float]]:
        slots, log, t0 = Slots("x", workers=2), [], time.monotonic()
        await asyncio.gather(*(_hold(slots, 0.2, log, n, t0) for n in "abcde"))
        assert slots.busy == 0 and slots.waiting == 0 and slots.queued_total == 3
        return log
    log = asyncio.run(main())
    assert [name for name, _ in log] == list("abcde")
    a, b, c, d, e = (t for _, t in log)
    slack = 0.01
    assert b - a < 0.2 - slack, log  # b did not wait for a's slot
    assert min(c, d) >= min(a, b) + 0.2 - slack, log  # c and d waited for a hold to end
    assert e >= min(c, d) + 0.2 - slack, log  # and e for the next one


def test_slots_integrate_busy_and_available_slot_seconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's station integrals: 2 of 4 slots busy for 10 s, then 1 for 10 s, is
    30 slot-seconds busy of 80 available (37.5%); a resize counts from its moment."""
    now = [100.0]
    monkeypatch.setattr("sandbox.slots.time.monotonic", lambda: now[0])

    async def main() -> dict[str, float | int | None]:
        slots = Slots("engine-az-a", workers=4)
        await slots.acquire()
        await slots.acquire()
        now[0] += 10.0
        slots.release()
        now[0] += 10.0
        first = slots.snapshot()
        assert (first["busy_seconds"], first["capacity_seconds"], first["started"]) == (
            30.0, 80.0, 2)
        slots.resize(2, None)
        now[0] += 5.0
        return slots.snapshot()
    after = asyncio.run(main())
    assert (after["busy_seconds"], after["capacity_seconds"]) == (35.0, 90.0)
    unlimited = Slots("x")
    now[0] += 5.0
    assert unlimited.snapshot()["capacity_seconds"] == 0.0  # no limit: no capacity


CONTROL_PLANE = "scenarios/auth_failure_control_plane.yaml"


def test_the_connector_section_carries_the_run_seed() -> None:
    """The seed of the connectors' token draws (sandbox.connector: which of a tenant's
    tokens a call uses); a configuration written before it draws from seed 0."""
    scenario = read_scenario("scenarios/auth_failure_mitigated.yaml", "standin").scenario
    config = config_from_scenario(scenario.model_copy(
        update={"run": scenario.run.model_copy(update={"seed": 7})}))
    assert connector_section(config["connector"])["seed"] == 7
    older = {k: v for k, v in default_config()["connector"].items() if k != "seed"}
    assert connector_section(older)["seed"] == 0


def test_the_scenarios_control_plane_is_a_tier_of_the_connectors() -> None:
    from sandbox.control_plane import ControlPlaneTier

    scenario = read_scenario(CONTROL_PLANE, "standin").scenario
    config = config_from_scenario(scenario)
    section = connector_section(config["connector"])["control_plane"]
    assert (section["workers"], section["queue_limit"]) == (5, None)
    assert section["policy_time"] == {"dist": "exponential", "mean": 0.01}
    assert "topology.control_plane" not in not_honoured(scenario, TENANTS)
    assert connector_section(default_config()["connector"])["control_plane"] is None
    one, two = ControlPlaneTier("az-a", section), ControlPlaneTier("az-a", section)
    draws = [one.policy() + one.lookup() for _ in range(2000)]
    assert draws[:5] == [two.policy() + two.lookup() for _ in range(5)]  # seeded streams
    assert statistics.mean(draws) == pytest.approx(0.015, rel=0.1)  # 10 ms + 5 ms means


@pytest.mark.parametrize("bad", [
    {"workers": 5}, {"workers": None, "queue_limit": None, "policy_time": {"dist":
     "constant", "value": 0.01}, "token_lookup_time": {"dist": "constant", "value": 0.01},
     "seed": 1},
    {"workers": 5, "queue_limit": None, "policy_time": {"dist": "nope"},
     "token_lookup_time": {"dist": "constant", "value": 0.01}, "seed": 1}])
def test_a_bad_control_plane_section_is_400(bad: dict[str, object]) -> None:
    body = {**default_config()["connector"], "control_plane": bad}
    with pytest.raises(ApiError) as err:
        connector_section(body)
    assert err.value.status == 400 and "connector.control_plane" in err.value.message


def test_a_fetch_holds_a_control_plane_slot_for_the_drawn_times() -> None:
    """5 fetches through 2 slots of 0.1 s each: 0.5 slot-seconds busy, the last waits."""
    from sandbox.control_plane import ControlPlaneTier

    constant = {"dist": "constant", "value": 0.05}
    tier = ControlPlaneTier("az-a", {"workers": 2, "queue_limit": None, "seed": 1,
                                     "policy_time": constant, "token_lookup_time": constant})

    async def main() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*(tier.pass_through() for _ in range(5)))
        return time.monotonic() - t0
    elapsed = asyncio.run(main())
    snap = tier.slots.snapshot()
    assert snap["started"] == 5 and snap["queued_total"] == 3 and snap["busy"] == 0
    # 0.5 slot-seconds held, in 3 rounds of 0.1 s at least (two slots, five fetches; the
    # counts above say which waited): a late wake-up adds to both, never takes away
    busy = float(snap["busy_seconds"] or 0)
    assert 0.5 - 0.01 <= busy <= 2 * elapsed, (busy, elapsed)
    assert elapsed >= 0.3 - 0.01, elapsed


def test_slots_refuse_past_the_queue_limit_and_grow_at_once() -> None:
    async def main() -> None:
        slots = Slots("connector-az-a", workers=1, queue_limit=1)
        await slots.acquire()
        waiter = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as refused:
            await slots.acquire()
        assert (refused.value.status, refused.value.code) == (503, "OVERLOADED")
        slots.resize(2, 1)  # a bigger pool admits the waiter without a release
        await asyncio.wait_for(waiter, 1.0)
        assert slots.busy == 2 and slots.refused == 1
    asyncio.run(main())


def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    async def main() -> None:
        slots = Slots("x", workers=1)
        await slots.acquire()
        waiter = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        slots.release()
        assert slots.busy == 0 and slots.waiting == 0
    asyncio.run(main())


def test_derive_seed_is_the_simulators() -> None:
    from sim.kernel.streams import derive_seed as sim_seed
    assert derive_seed(7, "numpy", "provider.crm.latency") == sim_seed(
        7, "numpy", "provider.crm.latency")


def _provider(**limit: float | None) -> ProviderSettings:
    section = default_config()["providers"]["crm"]
    section["rate_limit"] = {"per_tenant": None, "per_tenant_burst": None, "app": None,
                             "app_burst": None, "retry_after_seconds": 1.0, **limit}
    return ProviderSettings("crm", parse_provider_section(section))


def test_a_call_needs_both_the_tenant_and_the_app_bucket() -> None:
    provider = _provider(per_tenant=0.001, per_tenant_burst=3, app=0.001, app_burst=4)
    granted = [provider.admit("acme") == 0.0 for _ in range(5)]
    assert granted == [True, True, True, False, False]  # acme's burst of 3
    assert provider.admit("globex") == 0.0  # the app's 4th token
    assert provider.admit("globex") == 1.0  # app empty: refused with the scenario's 1 s


def test_latency_draws_follow_the_seeded_stream() -> None:
    section = config_from_scenario(read_scenario(REPO / "scenarios/rate_limit_flood.yaml",
                                                 "standin").scenario)["providers"]["crm"]
    provider = ProviderSettings("crm", parse_provider_section(section))
    rng = np.random.default_rng(derive_seed(1, "numpy", "provider.crm.latency"))
    expected = rng.lognormal(np.log(0.15), np.log(1.2 / 0.15) / 2.3263478740408408, 5)
    assert [provider.latency() for _ in range(5)] == pytest.approx(expected.tolist())
    draws = [provider.latency() for _ in range(4000)]
    assert statistics.median(draws) == pytest.approx(0.15, rel=0.06)  # ±4 sd of the median


@pytest.mark.parametrize("section, body", [
    (engine_section, {"workers": 0, "queue_limit": None, "timeout_seconds": 1}),
    (engine_section, {"workers": 2, "queue_limit": None}),
    (connector_section, {"workers": 2, "queue_limit": None, "timeout_seconds": 1,
                         "retries": {"max_attempts": 1}}),
    (connector_section, {**default_config()["connector"], "seed": -1}),
    (connector_section, {**default_config()["connector"], "seed": "1"}),
    (gateway_section, {"timeout_seconds": float("inf"), "zone_retry": False,
                       "health_check": {}}),
    (gateway_section, []),
    (parse_provider_section, {"latency": {"dist": "empirical", "file": "/etc/passwd"}}),
])
def test_bad_sections_are_400(section: object, body: object) -> None:
    with pytest.raises(ApiError) as err:
        section(body)  # type: ignore[operator]
    assert err.value.status == 400


def test_defaults_keep_todays_stand_in() -> None:
    config = default_config()
    assert config["cache"] == {"enabled": True, "ttl_seconds": 60.0, "soft_cache": False,
                               "coalesce": True}
    assert config["engine"]["workers"] is None and config["connector"]["workers"] is None
    assert config["gateway"]["zone_retry"] is True


def test_coalescing_only_from_the_scenarios_mitigations() -> None:
    plain = read_scenario(REPO / "scenarios/cache_stampede.yaml", "standin").scenario
    mitigated = read_scenario(REPO / "scenarios/cache_stampede_mitigated.yaml",
                              "standin").scenario
    assert config_from_scenario(plain)["cache"]["coalesce"] is False
    assert config_from_scenario(mitigated)["cache"] == {
        "enabled": True, "ttl_seconds": mitigated.topology.cache.ttl, "soft_cache": True,
        "coalesce": True}


def test_not_honoured_names_what_the_stand_in_cannot_do() -> None:
    region = read_scenario(REPO / "scenarios/regional_failover.yaml", "standin").scenario
    gaps = not_honoured(region, TENANTS)
    # The region loss is acted out (sandbox.admin.region); only the metadata lag is not.
    assert "faults.0" not in gaps and "failover" not in gaps
    assert "PostgreSQL" in gaps["failover.metadata.lag"]
    unreplicated = region.model_copy(update={"failover": region.failover.model_copy(
        update={"replicated": ("kms_keys",), "metadata": region.failover.metadata.model_copy(
            update={"mode": "snapshot"})})})
    gaps = not_honoured(unreplicated, TENANTS)
    assert "failover.replicated" in gaps and "failover.metadata.mode" in gaps
    assert "topology.engine.service_time" in gaps
    flood = read_scenario(REPO / "scenarios/rate_limit_flood_mitigated.yaml",
                          "standin").scenario
    assert "mitigations.0" in not_honoured(flood, TENANTS)  # a cap after the fault starts
    assert "workload.tenants.acme" in not_honoured(flood, ("globex",))


@pytest.mark.parametrize("path", STANDIN, ids=lambda p: Path(p).stem)
def test_every_standin_profile_maps(path: str) -> None:
    source = read_scenario(path, "standin")
    config = config_from_scenario(source.scenario, scenario_label(source))
    for name, section in config["providers"].items():
        ProviderSettings(name, parse_provider_section(section))
    engine_section(config["engine"])
    connector_section(config["connector"])
    gateway_section(config["gateway"])
    assert scenario_body(source)["name"] == f"{Path(path).name} --profile standin"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def test_a_bad_scenario_exits_2_naming_file_field_and_line(tmp_path: Path) -> None:
    flood = "scenarios/rate_limit_flood.yaml"
    bad = ("--scenario", flood, "--profile", "standin",
           "--set", "topology.engine.workers_per_zone=x")
    up = _run("sandbox", "up", "--detach", "--dir", str(tmp_path / "sb"), *bad)
    assert up.returncode == 2
    assert f"{flood}:35: topology.engine.workers_per_zone:" in up.stderr
    assert not (tmp_path / "sb").exists()  # refused before anything started
    apply = _run("sandbox.admin", "--dir", str(tmp_path / "sb"), "apply-scenario", *bad[1:])
    assert apply.returncode == 2 and f"{flood}:35:" in apply.stderr
