"""The regional result cache (ElastiCache Redis): per-key TTL, sharded over zones.

Keys are spread over ``nodes_per_zone × zones`` shards; a shard's primary lives in one
zone. When a zone is lost, lookups on its shards miss (without writing back) until the
shards fail over to replicas in other zones (``failover_time``): with ``replicas`` the
data survives, without it the shards come back empty. A flush (invalidation event)
drops every key, or a tenant's. The lookup latency is part of the engine's service time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..kernel import Recorder, schedule
from ..kernel.events import Call
from ..scenario import Cache as CacheSpec

if TYPE_CHECKING:
    import simpy

__all__ = ["ResultCache"]


class ResultCache:
    """Key → expiry time, with shards that go down with their zone."""

    def __init__(self, env: "simpy.Environment", spec: CacheSpec, n_zones: int,
                 recorder: Recorder, keys_per_tenant: int) -> None:
        self.env, self.spec = env, spec
        self.enabled, self.ttl = spec.enabled, spec.ttl
        self.recorder = recorder
        self.n_shards = spec.nodes_per_zone * n_zones
        self.n_zones = n_zones
        self.shard_up = [True] * self.n_shards
        self.expiry: dict[int, float] = {}
        self.keys_per_tenant = keys_per_tenant  # key space of one tenant, for tenant flushes
        self.hits = self.misses = 0
        recorder.add_counters("cache", self, ("hits", "misses"))

    def lookup(self, key: int, now: float) -> bool:
        """A hit if the key is cached, unexpired, on a live shard; counts hits and misses."""
        if self.enabled and self.shard_up[key % self.n_shards]:
            expiry = self.expiry.get(key)
            if expiry is not None and expiry > now:
                self.hits += 1
                return True
        self.misses += 1
        return False

    def store(self, key: int, now: float) -> None:
        if self.enabled and self.shard_up[key % self.n_shards]:
            self.expiry[key] = now + self.ttl

    def shard_zone(self, shard: int) -> int:
        return shard % self.n_zones

    # -- narrow methods for faults --------------------------------------------------------

    def fail_zone(self, zone: int) -> None:
        """The zone's nodes are gone: its shards are down until they fail over."""
        shards = [s for s in range(self.n_shards) if self.shard_zone(s) == zone]
        for shard in shards:
            self.shard_up[shard] = False
        if not self.spec.replicas:
            lost = {s for s in shards}
            for key in [k for k in self.expiry if k % self.n_shards in lost]:
                del self.expiry[key]
        schedule(self.env, self.spec.failover_time, self._failed_over, shards)

    def _failed_over(self, call: Call) -> None:
        for shard in call.job:
            self.shard_up[shard] = True

    def recover_zone(self, zone: int) -> None:
        """The zone is back before its shards failed over: they are served again."""
        for shard in range(self.n_shards):
            if self.shard_zone(shard) == zone:
                self.shard_up[shard] = True

    def flush(self, tenant: int | None = None) -> None:
        """Invalidate every key, or only ``tenant``'s."""
        if tenant is None:
            self.expiry.clear()
            return
        low, high = tenant * self.keys_per_tenant, (tenant + 1) * self.keys_per_tenant
        for key in [k for k in self.expiry if low <= k < high]:
            del self.expiry[key]
