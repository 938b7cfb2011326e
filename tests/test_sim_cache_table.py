"""The result cache's two layouts, a table indexed by key and a map, answer alike.

An unbounded cache whose key space one TTL can largely fill keeps its expiry times in a
table (:func:`sim.model.cache.dense_keys`); otherwise, and always with a capacity, in a
map. The choice is the simulator's, for speed and memory: these tests hold that it can
never show in a result, from single operations up to whole shipped scenarios."""

from __future__ import annotations

import math
import random
import runpy
from typing import Any

import pytest
from sim_helpers import ROOT, SCENARIOS

from labcore.facts import OUTCOMES
from labcore.scenario_file import load_scenario
from sim.kernel import Environment, Recorder
from sim.model import system
from sim.model.cache import ResultCache, dense_keys

TENANTS, KEYS_PER_TENANT = 4, 150  # a key space of 600: every key is met many times


def _pair(replicas: bool, stale: float) -> tuple[Environment, ResultCache, ResultCache]:
    spec = load_scenario(SCENARIOS / "baseline.yaml").topology.cache  # ttl 5m
    spec = spec.model_copy(update={"replicas": replicas, "ttl": 20.0, "failover_time": 2.0})
    env = Environment()
    recorder = Recorder(env, 10.0, ["acme"], outcomes=OUTCOMES)
    keyed = ResultCache(env, spec, 3, recorder, KEYS_PER_TENANT, stale)
    table = ResultCache(env, spec, 3, recorder, KEYS_PER_TENANT, stale,
                        dense=TENANTS * KEYS_PER_TENANT)
    assert not keyed.table and len(table.table) == TENANTS * KEYS_PER_TENANT
    return env, keyed, table


@pytest.mark.parametrize("replicas", [True, False])
@pytest.mark.parametrize("soft", [False, True])
def test_the_table_and_the_map_answer_every_operation_alike(replicas: bool,
                                                             soft: bool) -> None:
    """Random stores, lookups, flushes (all, one tenant; hard or soft) and zone losses
    with and without replicas, in time order: every lookup, every expiry and the
    counters agree, and the map is not empty (the test exercises both)."""
    env, keyed, table = _pair(replicas, stale=15.0)
    keyed.soft_purge = table.soft_purge = soft
    rng = random.Random(20261202)
    now, hits, misses, flushes, losses = 0.0, 0, 0, 0, 0
    for _ in range(30_000):
        now += rng.expovariate(200.0)
        env.run(until=now)  # the clock flushes and zone recoveries read
        op = rng.random()
        key = rng.randrange(TENANTS * KEYS_PER_TENANT)
        if op < 0.45:
            hit = keyed.lookup(key, now)
            assert table.lookup(key, now) == hit
            hits, misses = hits + hit, misses + (not hit)
        elif op < 0.9:
            keyed.store(key, now)
            table.store(key, now)
        elif op < 0.994:
            assert keyed.expiry_of(key) == table.expiry_of(key)
        elif op < 0.999:
            tenant = rng.choice([None, rng.randrange(TENANTS)])
            keyed.flush(tenant)
            table.flush(tenant)
            flushes += 1
        else:
            zone = rng.randrange(3)
            keyed.fail_zone(zone)
            table.fail_zone(zone)
            losses += 1
    for key in range(TENANTS * KEYS_PER_TENANT):
        assert keyed.expiry_of(key) == table.expiry_of(key)
        assert (key in keyed.expiry) == (table.table[key] > -math.inf)
    assert (keyed.hits, keyed.misses) == (table.hits, table.misses)  # this window's
    assert hits > 1000 and misses > 1000  # both answers, many times
    assert flushes > 100 and losses > 15 and keyed.expiry


def test_a_key_never_stored_reads_as_neither_fresh_nor_stale() -> None:
    env, keyed, table = _pair(replicas=True, stale=15.0)
    for cache in (keyed, table):
        assert cache.expiry_of(7) == -math.inf
        assert not cache.lookup(7, 0.0)
        cache.store(7, 1.0)
        assert cache.expiry_of(7) == 21.0
        assert cache.lookup(7, 20.5) and not cache.lookup(7, 21.0)


def test_the_table_is_chosen_where_one_ttl_can_fill_a_sixteenth_of_the_key_space() -> None:
    spec = load_scenario(SCENARIOS / "baseline.yaml").topology.cache  # 5 min, unbounded
    assert dense_keys(spec, 60_000, 1000.0) == 60_000  # the baseline: 300,000 stores a TTL
    assert dense_keys(spec, 16 * 300_000, 1000.0) == 16 * 300_000
    assert dense_keys(spec, 16 * 300_000 + 1, 1000.0) == 0  # sparse: the map
    assert dense_keys(spec, (1 << 24) + 1, 1e9) == 0  # a table past 128 MB: the map
    bounded = spec.model_copy(update={"max_keys_per_node": 1000})
    assert dense_keys(bounded, 60_000, 1000.0) == 0  # eviction keeps write order: the map
    off = spec.model_copy(update={"enabled": False})
    assert dense_keys(off, 60_000, 1000.0) == 0


def test_a_bounded_cache_keeps_the_map_whatever_it_is_asked() -> None:
    scenario = load_scenario(SCENARIOS / "baseline.yaml",
                             overrides=["topology.cache.max_keys_per_node=10"])
    env = Environment()
    recorder = Recorder(env, 10.0, ["acme"], outcomes=OUTCOMES)
    cache = ResultCache(env, scenario.topology.cache, 3, recorder, 100, dense=400)
    assert not cache.table
    for key in range(100):
        cache.store(key, 0.0)
    assert len(cache.expiry) == 30 and cache.evictions == 70  # 10 a node, 3 nodes


FINGERPRINT: dict[str, Any] = runpy.run_path(str(ROOT / "scripts" / "fingerprint.py"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cache_stampede_mitigated.yaml", "az_loss.yaml",
                                  "closed_loop_stampede.yaml"])
def test_a_scenario_gives_the_same_fingerprint_with_the_table_or_the_map(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Soft caching, flushes and stale serving; a zone's shards lost; closed-loop users:
    the whole run (summary.json, every window array, marks, facts) with the table the
    simulator chooses, then with the map forced."""
    path = str(SCENARIOS / name)
    chosen: list[int] = []
    choose = system.dense_keys

    def spy(*args: Any) -> int:
        chosen.append(choose(*args))
        return chosen[-1]

    monkeypatch.setattr(system, "dense_keys", spy)
    with_table = FINGERPRINT["fingerprint"](path, 1)
    assert chosen and chosen[0] > 0  # the table was in use
    monkeypatch.setattr(system, "dense_keys", lambda *args: 0)
    assert FINGERPRINT["fingerprint"](path, 1) == with_table
