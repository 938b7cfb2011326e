"""The result cache on Redis: tenant-scoped keys, per-key TTL, soft caching and coalescing.

An entry is `{"rows", "fresh_until"}` stored with a Redis TTL of `ttl + stale_grace`. Past
`fresh_until` it is stale: with soft caching on (SOP-102) the stale rows are served while
exactly one refresh runs (a Redis `SET NX` lock shared by every engine in every AZ); with it
off, a stale entry is a miss. Coalescing makes concurrent misses on one key share a single
fetch: within an engine one task per key, across engines a claim in Redis (`sandbox.fills`).

When Redis keeps failing (errors or socket timeouts judged over a window, `sandbox.breaker`),
a circuit breaker opens and the engine serves from the provider directly ("bypass"), at most
`BYPASS_SLOTS` fetches at a time per engine so a cache outage cannot turn into a provider
flood; beyond that it answers `503 CACHE_UNAVAILABLE`. Nothing is stored while the cache is
down. Coalescing needs no Redis (the fetches in flight are the engine's own), so it holds in
bypass too: a Redis that is down or one slow `GET` must not let a herd through to the provider.

A caller waits at most its ``patience`` (the engine's timeout, its client's budget) and then
gets `504 UPSTREAM_TIMEOUT`, but a fill it started runs on: the connector's answer is stored
when it comes, as the simulator's connector writes the cache for an attempt whose client has
given up (docs/model.md, "Connectors"). Cutting the fill at the client's timeout instead threw
away most of the calls the providers admitted during a cold start (docs/conformance.md,
cache_stampede's cold start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sandbox.breaker import Breaker
from sandbox.errors import ApiError
from sandbox.fills import SharedFills, fresh_rows

__all__ = [
    "BYPASS_SLOTS",
    "hot_path_redis",
    "CONFIG_KEY",
    "CacheOptions",
    "ResultCache",
    "cache_key",
    "stale_copy",
    "tenant_pattern",
]
T = TypeVar("T")

CONFIG_KEY = "omnisql:config"
BYPASS_SLOTS = 8
Rows = list[dict[str, Any]]
Fetch = Callable[[], Awaitable[Rows]]


def hot_path_redis(port: int, password: str, timeout: float = 0.5) -> aioredis.Redis:
    """A client for request paths: short socket timeouts and no retries (redis-py retries
    3 times with backoff by default, seconds per call against a paused Redis); the breaker
    and the callers' fallbacks deal with failures instead."""
    return aioredis.Redis(host="127.0.0.1", port=port, password=password,
                          socket_timeout=timeout, socket_connect_timeout=timeout,
                          retry=Retry(NoBackoff(), 0))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def cache_key(tenant: str, fingerprint: str) -> str:
    """The tenant is part of the key, so one tenant's entry can never answer another's query."""
    return f"omnisql:cache:{tenant}:{fingerprint}"


def tenant_pattern(tenant: str | None) -> str:
    return f"omnisql:cache:{tenant}:*" if tenant else "omnisql:cache:*"


def stale_copy(raw: bytes | str | None, now: float) -> str | None:
    """``raw`` as a stale entry from ``now`` on (a soft purge: its rows kept, its
    ``fresh_until`` at most ``now``), or None when ``raw`` is not an entry (a fill's claim or
    a refresh lock under the same prefix)."""
    try:
        entry = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(entry, dict) or "fresh_until" not in entry:
        return None
    entry["fresh_until"] = min(entry["fresh_until"], now)
    return json.dumps(entry)


@dataclass
class CacheOptions:
    """Runtime options, read from the Redis hash `omnisql:config` (set by the admin API)."""

    ttl: float = 60.0
    stale_grace: float = 300.0
    soft_cache: bool = False
    coalesce: bool = True
    #: ``false`` (a scenario's ``cache.enabled: false``): every query is fetched, none stored.
    enabled: bool = True

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> CacheOptions:
        get = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            ttl=float(get.get("ttl_seconds", 60.0)),
            stale_grace=float(get.get("stale_grace_seconds", 300.0)),
            soft_cache=get.get("soft_cache", "0") == "1",
            coalesce=get.get("coalesce", "1") == "1",
            enabled=get.get("enabled", "1") == "1",
        )


class ResultCache:
    """Looks results up in Redis and fills misses through a fetch callback."""

    def __init__(self, store: aioredis.Redis) -> None:
        self.store = store
        self.options = CacheOptions()
        self.breaker = Breaker("redis")
        self._bypass = asyncio.Semaphore(BYPASS_SLOTS)
        self._inflight: dict[str, asyncio.Future[Rows]] = {}  # fills and bypass fetches
        self._background: set[asyncio.Task[Any]] = set()
        self.fills = SharedFills(store)  # coalescing across engines

    async def reload_options(self) -> None:
        if self.breaker.closed:
            self.options = CacheOptions.from_hash(await self.store.hgetall(CONFIG_KEY))

    async def get(self, key: str, fetch: Fetch, patience: float | None = None,
                  on_miss: Callable[[], None] | None = None) -> tuple[Rows, str]:
        """Rows and how they were served: "hit", "stale", "miss" or "bypass" (cache down).
        ``patience``: seconds this caller waits for a fetch (None: until it ends); past it,
        504, while a fill goes on to store its rows. ``on_miss``: called once the lookup
        found nothing to serve, before this caller starts a fetch or joins one in flight
        (the engine frees its worker slot there: the rest is waiting, not work)."""
        found = await self._look(key, fetch)
        if isinstance(found, tuple):
            return found
        if on_miss is not None:
            on_miss()
        if found == "off":
            return await _bounded(fetch(), patience), "miss"
        if found == "bypass":
            return await self._bypass_fill(key, fetch, patience), "bypass"
        return await self._fill(key, fetch, patience), "miss"

    async def _look(self, key: str, fetch: Fetch) -> tuple[Rows, str] | str:
        """A hit, or a stale entry (its refresh started), else how the miss is filled:
        "off" (no cache), "bypass" (cache down) or "miss"."""
        if not self.options.enabled:
            return "off"
        if not self.breaker.closed:
            return "bypass"
        started = time.monotonic()
        try:
            raw = await self.store.get(key)
        except RedisError:
            self.breaker.failure(started)
            return "bypass"
        self.breaker.success()
        if raw is not None:
            entry = json.loads(raw)
            if entry["fresh_until"] > time.time():
                return entry["rows"], "hit"
            if self.options.soft_cache:
                await self._refresh_in_background(key, fetch)
                return entry["rows"], "stale"
        return "miss"

    async def _bypassing(self, fetch: Fetch) -> Rows:
        if self._bypass.locked():
            raise ApiError(503, "CACHE_UNAVAILABLE",
                           "the result cache (Redis) is unavailable and the provider bypass "
                           "is at its limit", retry_after=1)
        async with self._bypass:
            return await fetch()

    async def _bypass_fill(self, key: str, fetch: Fetch, patience: float | None) -> Rows:
        # Nothing is stored in bypass: past its caller's patience, the caller stops waiting
        # (the engine's HTTP exchange with its connector runs on: sandbox.engine._exchange).
        return await self._coalesced(key, lambda: _bounded(self._bypassing(fetch), patience),
                                     patience)

    async def _fill(self, key: str, fetch: Fetch, patience: float | None) -> Rows:
        """Fetch and store in a task of its own, which a caller that stops waiting does not
        cancel (see the module docstring). With coalescing, concurrent callers for ``key``
        share it (or a bypass fetch in flight), each waiting its own patience."""
        pending = self._inflight.get(key) if self.options.coalesce else None
        if pending is not None:
            return await _bounded(asyncio.shield(pending), patience)
        work = self._shared_fill(key, fetch) if self.options.coalesce else \
            self._fetch_and_store(key, fetch)
        task = self._detach(work)
        task.add_done_callback(_settled)
        if self.options.coalesce:
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await _bounded(asyncio.shield(task), patience)

    def _detach(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` in a task no caller's cancellation reaches, held until it ends."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _forget(self, key: str, done: asyncio.Future[Rows]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]

    async def _coalesced(self, key: str, fetch: Fetch, patience: float | None) -> Rows:
        """``fetch()``, shared with the concurrent callers for ``key`` when coalescing is on."""
        if not self.options.coalesce:
            return await fetch()
        pending = self._inflight.get(key)
        if pending is not None:
            return await _bounded(asyncio.shield(pending), patience)
        future: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            rows = await fetch()
            future.set_result(rows)
            return rows
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._forget(key, future)

    async def _shared_fill(self, key: str, fetch: Fetch) -> Rows:
        """Fill ``key`` unless another engine is filling it: then its rows
        (:mod:`sandbox.fills`). Without Redis, this engine fills it."""
        while True:
            started = time.monotonic()
            try:
                if not await self.fills.claim(key):
                    rows = await self.fills.wait(key)
                    if rows is None:
                        continue  # that fill failed: claim the key again
                    return rows
            except RedisError:
                self.breaker.failure(started)
                return await self._fetch_and_store(key, fetch)
            try:
                # Another engine's fill may have stored the rows and released its claim
                # between this caller's lookup and its claim: then there is nothing to fetch.
                stored = await self._stored(key)
                return stored if stored is not None else await self._fetch_and_store(key, fetch)
            finally:
                await self.fills.release(key)

    async def _stored(self, key: str) -> Rows | None:
        """The fresh rows stored under ``key``, or None (none, stale, or Redis failed)."""
        started = time.monotonic()
        try:
            return fresh_rows(await self.store.get(key))
        except RedisError:
            self.breaker.failure(started)
            return None

    async def _fetch_and_store(self, key: str, fetch: Fetch) -> Rows:
        rows = await fetch()
        entry = json.dumps({"rows": rows, "fresh_until": time.time() + self.options.ttl})
        started = time.monotonic()
        try:
            await self.store.set(key, entry, ex=int(self.options.ttl + self.options.stale_grace))
        except RedisError:  # the rows are good; only caching them failed
            self.breaker.failure(started)
        return rows

    async def _refresh_in_background(self, key: str, fetch: Fetch) -> None:
        # One refresher across all engines; the lock expires if its holder dies.
        started = time.monotonic()
        try:
            if not await self.store.set(f"{key}:refresh", "1", nx=True, px=10_000):
                return
        except RedisError:
            self.breaker.failure(started)
            return
        self._detach(self._refresh(key, fetch))

    async def _refresh(self, key: str, fetch: Fetch) -> None:
        try:
            await self._fetch_and_store(key, fetch)
        except (ApiError, RedisError) as exc:  # the stale copy keeps serving; next read retries
            print(f"cache refresh failed: {type(exc).__name__}", flush=True)
        finally:
            with contextlib.suppress(RedisError):
                await self.store.delete(f"{key}:refresh")


async def _bounded(work: Awaitable[Rows], patience: float | None) -> Rows:
    """``work``'s rows, or 504 once ``patience`` seconds have passed (None: no limit)."""
    try:
        return await asyncio.wait_for(work, patience)
    except TimeoutError:
        raise ApiError(504, "UPSTREAM_TIMEOUT", "the connector did not answer in time") from None


def _settled(task: asyncio.Task[Rows]) -> None:
    """Read a detached fill's outcome, so one nobody waited for is not logged as lost."""
    if not task.cancelled():
        task.exception()
