"""The regional result cache (ElastiCache Redis): per-key TTL, sharded over zones.

Keys are spread over ``nodes_per_zone × zones`` shards; a shard's primary lives in one
zone. When a zone is lost, lookups on its shards miss (without writing back) until the
shards fail over to replicas in other zones (``failover_time``): with ``replicas`` the
data survives, without it the shards come back empty. A flush (invalidation event)
drops every key, or a tenant's. The lookup latency is part of the engine's service time.

Capacity (``max_keys_per_node``): when the cluster is full, storing a new key evicts
the one written longest ago, which with a single TTL is the one nearest expiry (Redis
``volatile-ttl``). The capacity is the per-node figure times the nodes in service, kept
as one pool (keys hash evenly over nodes); scaling the cluster (:meth:`scale`) adds
nodes as capacity and moves no keys, as a slot migration keeps the data.

Without a capacity, keys that expired longer ago than any stale window can reach
(soft caching's largest ``max_stale`` in the scenario, 0 without it) are forgotten
whenever the map has doubled since it was last swept: it is then bounded by the keys
alive, not by every key ever stored, and no lookup can tell the difference. A bounded
cache is not swept: its expired keys hold capacity until evicted, as before.

Where the keys one TTL can store reach a sixteenth of the key space (every tenant's
targets times ``keys``), an unbounded cache keeps its expiry times in a table indexed by
key instead of the map (:func:`dense_keys`): a lookup then reads one slot where the map
reads its index, its entry, the stored key and the float, which at 50,000 requests a
second and millions of keys is memory the processor waits for. Compiled, the table is a
packed array of doubles (:mod:`sim.kernel.packed`), so a slot is the expiry itself and a
store allocates nothing; as plain Python, a list of floats. A slot with
no key holds minus infinity, which every lookup reads as expired and no stale window
reaches, so the table and the map answer every lookup alike; which one a run uses
changes its speed and memory, never a result.

:class:`ReadThrough` stands between the engine's misses and the connectors once a
runbook turns on soft caching, request coalescing or XFetch (SOP-102); until then it is
not on the data path at all.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Final

from labcore.scenario import Cache as CacheSpec

from ..kernel import Recorder, Streams, schedule
from ..kernel.events import Call, Kernel
from ..kernel.packed import floats
from .request import OK, Attempt, Request

if TYPE_CHECKING:
    from librt.vecs import vec

    from ..kernel.environment import Environment
    from .connector import Connectors
    from .engine import Engine

__all__ = ["ResultCache", "ReadThrough", "dense_keys"]

_MIN_SWEEP: Final = 4096  # keys: below this the map is never swept
_ABSENT: Final = -math.inf  # a table slot with no key: expired, and past any stale window
_DENSE_MAX: Final = 1 << 24  # keys: a larger key space keeps the map (a table of 128 MB)


def dense_keys(spec: CacheSpec, key_space: int, nominal_rate: float) -> int:
    """The size of the table for an unbounded cache of ``key_space`` keys; 0: the map.

    A table costs 8 bytes a possible key (compiled; as plain Python, a float object too for
    each key stored); the map about 100 a key it holds (the entry, its
    index, the key's int), and up to twice the keys alive between sweeps. The table is
    chosen where the keys one TTL can store at ``nominal_rate`` (requests a second) reach
    a sixteenth of the key space: then it is not much larger than the map can grow."""
    if not spec.enabled or spec.max_keys_per_node is not None or key_space > _DENSE_MAX:
        return 0
    if 16.0 * nominal_rate * spec.ttl < key_space:
        return 0
    return key_space


class ResultCache:
    """Key → expiry time, with shards that go down with their zone."""

    def __init__(self, env: "Environment", spec: CacheSpec, n_zones: int,
                 recorder: Recorder, keys_per_tenant: int, stale_horizon: float = 0.0,
                 dense: int = 0) -> None:
        self.env, self.spec = env, spec
        self.kernel: Kernel = env.kernel
        self.enabled, self.ttl = spec.enabled, spec.ttl
        self.recorder = recorder
        self.n_shards = spec.nodes_per_zone * n_zones
        self.n_zones = n_zones
        self.shard_up = [True] * self.n_shards
        self.expiry: dict[int, float] = {}
        self.keys_per_tenant = keys_per_tenant  # key space of one tenant, for tenant flushes
        self.soft_purge = False  # soft caching: invalidations mark entries stale
        #: An entry expired longer ago than this is never served again (not even stale).
        self.stale_horizon = stale_horizon
        self.sweep_at = _MIN_SWEEP  # sweep when the map grows past this many keys
        self.capacity: int | None = None
        if spec.max_keys_per_node is not None:
            self.capacity = spec.max_keys_per_node * self.n_shards
            self.expiry = OrderedDict()  # write order, for O(1) eviction
            dense = 0  # eviction needs the write order: the map
        #: Key → expiry as a table of ``dense`` slots (keys 0 to dense - 1) if ``dense``,
        #: else as the map ``expiry``.
        self.dense = dense > 0
        self.table: vec[float] = floats(dense, _ABSENT)  # compiled, packed doubles
        self.hits = self.misses = self.evictions = 0
        recorder.add_counters("cache", self, ("hits", "misses", "evictions"))

    def lookup(self, key: int, now: float) -> bool:
        """A hit if the key is cached, unexpired, on a live shard; counts hits and misses."""
        if self.enabled and self.shard_up[key % self.n_shards]:
            if self.dense:
                if self.table[key] > now:
                    self.hits += 1
                    return True
            else:
                expiry = self.expiry.get(key)
                if expiry is not None and expiry > now:
                    self.hits += 1
                    return True
        self.misses += 1
        return False

    def expiry_of(self, key: int) -> float:
        """When ``key``'s entry expires; minus infinity if the cache holds none."""
        if self.dense:
            return self.table[key]
        expiry = self.expiry.get(key)
        return _ABSENT if expiry is None else expiry

    def store(self, key: int, now: float) -> None:
        if self.enabled and self.shard_up[key % self.n_shards]:
            if self.dense:
                self.table[key] = now + self.ttl
                return
            if self.capacity is not None:
                self._store_bounded(key, now)
                return
            expiry = self.expiry
            expiry[key] = now + self.ttl
            if len(expiry) > self.sweep_at:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Forget the keys no lookup can hit again (in place: the dict is shared)."""
        horizon = now - self.stale_horizon
        expiry = self.expiry
        for key in [k for k, e in expiry.items() if e < horizon]:
            del expiry[key]
        self.sweep_at = max(_MIN_SWEEP, 2 * len(expiry))

    def _store_bounded(self, key: int, now: float) -> None:
        """:meth:`store` into a full-capacity cache: evict the oldest write first."""
        expiry = self.expiry
        assert isinstance(expiry, OrderedDict) and self.capacity is not None
        if key in expiry:
            expiry.move_to_end(key)
        elif len(expiry) >= self.capacity:
            expiry.popitem(last=False)
            self.evictions += 1
        expiry[key] = now + self.ttl

    def shard_zone(self, shard: int) -> int:
        return shard % self.n_zones

    # -- narrow methods for faults --------------------------------------------------------

    def fail_zone(self, zone: int) -> None:
        """The zone's nodes are gone: its shards are down until they fail over."""
        shards = [s for s in range(self.n_shards) if self.shard_zone(s) == zone]
        for shard in shards:
            self.shard_up[shard] = False
        if not self.spec.replicas:
            table = self.table
            for shard in shards:  # the keys k with k % n_shards == shard
                for key in range(shard, len(table), self.n_shards):
                    table[key] = _ABSENT
            lost = {s for s in shards}
            for key in [k for k in self.expiry if k % self.n_shards in lost]:
                del self.expiry[key]
        schedule(self.kernel, self.spec.failover_time, self._failed_over, shards)

    def _failed_over(self, call: Call) -> None:
        for shard in call.job:
            self.shard_up[shard] = True

    def recover_zone(self, zone: int) -> None:
        """The zone is back before its shards failed over: they are served again."""
        for shard in range(self.n_shards):
            if self.shard_zone(shard) == zone:
                self.shard_up[shard] = True

    def flush(self, tenant: int | None = None) -> None:
        """Invalidate every key, or only ``tenant``'s; with soft caching on, invalidated
        entries stay as stale copies (a soft purge) instead of being deleted."""
        now = self.kernel.now
        table = self.table
        if self.dense:
            first, end = 0, len(table)
            if tenant is not None:
                first = tenant * self.keys_per_tenant
                end = min(end, first + self.keys_per_tenant)
            for key in range(first, end):
                if not self.soft_purge:
                    table[key] = _ABSENT
                elif table[key] > now:  # min(expiry, now): no entry stays none
                    table[key] = now
            return
        if tenant is None and not self.soft_purge:
            self.expiry.clear()
            return
        low, high = 0.0, math.inf  # floats: compiled, a float variable holds no int
        if tenant is not None:
            low = float(tenant * self.keys_per_tenant)
            high = float((tenant + 1) * self.keys_per_tenant)
        for key in [k for k in self.expiry if low <= k < high]:
            if self.soft_purge:
                self.expiry[key] = min(self.expiry[key], now)
            else:
                del self.expiry[key]

    # -- narrow methods for mitigations ---------------------------------------------------

    def scale(self, nodes_per_zone: int) -> None:
        """New nodes joined: more capacity (shard placement for zone losses unchanged)."""
        if self.spec.max_keys_per_node is not None:
            self.capacity = self.spec.max_keys_per_node * nodes_per_zone * self.n_zones


class ReadThrough:
    """Soft caching, request coalescing and XFetch in front of the connectors.

    Installed by the first such mitigation (:meth:`install`): it then stands in front of
    the engine's ``lookup`` and ``fetch`` (its misses) and the connectors' ``finish``,
    through their setters, and forwards to the hops it replaced.
    It keeps, per key, the fetch in flight and the attempts waiting for it. A refresh
    (of a stale entry, or an early one by XFetch) is a fetch no client waits for: an
    attempt of a request with id -1 that ends here, not at the client.
    """

    def __init__(self, env: "Environment", cache: ResultCache, streams: Streams,
                 recorder: Recorder, n_targets: int, keys: int, lost_after: float) -> None:
        self.env, self.cache = env, cache
        self.kernel: Kernel = env.kernel
        self.n_targets, self.keys = n_targets, keys
        #: A fetch older than this is presumed lost (its zone failed): start another.
        self.lost_after = lost_after
        self.rng = streams.get("cache.xfetch")
        self.max_stale: float | None = None  # soft caching
        self.coalesce = False
        self.beta: float | None = None  # XFetch
        self.single_flight = True  # XFetch: no early refresh of a key already being fetched
        self.inflight: dict[int, list[Attempt]] = {}  # key → attempts waiting for its fetch
        self.started: dict[int, float] = {}  # key → when its fetch started
        self.delta: dict[int, float] = {}  # key → how long its last fetch took
        #: After a failed refresh, a key's stale copy is served without a new refresh
        #: for this long (rather than one more refresh per stale hit into a 429 wall).
        self.refresh_backoff = 5.0
        self.retry_at: dict[int, float] = {}  # key → no refresh before this time
        self.installed = False
        # Set by install (the hops it stands in front of) and the system (the zones).
        self.submit: Callable[[Attempt], None] = lambda attempt: None
        self.finish: Callable[[Attempt, int], None] = lambda attempt, outcome: None
        self.zones: Callable[[], list[int]] = lambda: [0]
        self.stale_served = self.coalesced = self.refreshes = self.early_refreshes = 0
        recorder.add_counters("cache", self, ("stale_served", "coalesced", "refreshes",
                                              "early_refreshes"))

    # -- data path ------------------------------------------------------------------------

    def lookup(self, key: int, now: float) -> bool:
        """A hit (fresh, or stale under soft caching: then one refresh is started)."""
        cache = self.cache
        if cache.shard_up[key % cache.n_shards]:
            expiry = cache.expiry_of(key)  # minus infinity: none (neither fresh nor stale)
            if expiry > now:
                beta = self.beta
                if beta is not None and self._xfetch(key, now, expiry, beta):
                    self.early_refreshes += 1
                    self._refresh(key, now)
                cache.hits += 1
                return True
            if (self.max_stale is not None and expiry > _ABSENT
                    and now - expiry <= self.max_stale):
                cache.hits += 1
                self.stale_served += 1
                if not self._fetching(key, now) and self.retry_at.get(key, 0.0) <= now:
                    self._refresh(key, now)
                return True
        cache.misses += 1
        return False

    def fetch(self, attempt: Attempt) -> None:
        """A miss: join the key's fetch in flight (coalescing) or start one."""
        key, now = attempt.request.key, self.kernel.now
        if self._fetching(key, now):
            if self.coalesce:
                self.inflight[key].append(attempt)
                self.coalesced += 1
                return
        else:
            self.inflight[key] = []
            self.started[key] = now
        self.submit(attempt)

    def fetched(self, attempt: Attempt, outcome: int) -> None:
        """A fetch ended: its waiters get the same outcome (a result, or its error)."""
        key, now = attempt.request.key, self.kernel.now
        started = self.started.pop(key, None)
        if not self.single_flight and attempt.request.id < 0:
            started = attempt.start  # without the lock each refresh times itself
        waiters = self.inflight.pop(key, ())
        if started is not None and outcome == OK:
            self.delta[key] = now - started
        if attempt.request.id >= 0:
            self.finish(attempt, outcome)
        elif outcome != OK:
            self.retry_at[key] = now + self.refresh_backoff
        for waiter in waiters:
            if waiter.alive:
                self.finish(waiter, outcome)

    def _fetching(self, key: int, now: float) -> bool:
        started = self.started.get(key)
        return started is not None and now - started <= self.lost_after

    def _xfetch(self, key: int, now: float, expiry: float, beta: float) -> bool:
        if self.single_flight and key in self.started:
            return False
        delta = self.delta.get(key)
        # Vattani et al.: refresh early when now - delta * beta * ln(U) >= expiry.
        if delta is None:
            return False
        return now - delta * beta * math.log(1.0 - self.rng.random()) >= expiry

    def _refresh(self, key: int, now: float) -> None:
        """Start a fetch for ``key`` that no client waits for."""
        self.refreshes += 1
        keys, n_targets = self.keys, self.n_targets
        tenant, target = key // (n_targets * keys), (key // keys) % n_targets
        request = Request(-1, tenant, 0, target, key, now)
        zones = self.zones()
        attempt = Attempt(request, zones[key % len(zones)], now)
        if self.single_flight or key not in self.started:
            self.inflight[key] = []
            self.started[key] = now
        # else: without the lock, a duplicate refresh leaves the fetch in flight its
        # waiters and its start (the first to end answers them and measures delta)
        self.submit(attempt)

    # -- narrow methods for mitigations ----------------------------------------------------

    def install(self, engine: "Engine", connectors: "Connectors") -> None:
        """Step onto the data path (once): lookups, misses and fetch ends come here; its
        fetches go where the engine's misses went (the connectors, or a control plane)."""
        if self.installed:
            return
        self.installed = True
        engine.set_lookup(self.lookup)
        self.submit = engine.set_fetch(self.fetch)
        self.finish = connectors.set_finish(self.fetched)
