"""The Redis circuit breaker under load (issue 16, degradation): it must open when Redis is
down, and must not open from one slow moment of a Redis that works.

The defect: `test_coalescing_and_soft_cache` failed under heavy load. On a starved machine
every Redis call in flight times out together (0.25 s then, 0.5 s now); the old breaker
counted those simultaneous timeouts as consecutive failures and opened, so for 2 s every
request bypassed the cache, coalescing was lost and the provider saw one fetch per request.
No process is started here: the cache runs against an in-memory store that can stall.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

from sandbox.breaker import Breaker
from sandbox.cache import BYPASS_SLOTS, ResultCache

pytestmark = pytest.mark.sandbox


class StallingStore:
    """Enough of redis.asyncio.Redis for ResultCache; `stalled` makes every call time out
    after `stall_seconds`, as a starved engine or Redis does; `down` fails at once."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.stalled = self.down = False
        self.calls = 0
        self.stall_seconds = 0.05

    async def _gate(self) -> None:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("refused")
        if self.stalled:
            await asyncio.sleep(self.stall_seconds)
            raise RedisTimeout("Timeout reading from socket")

    async def get(self, key: str) -> Any:
        await self._gate()
        return self.data.get(key)

    async def set(self, key: str, value: Any, **_: Any) -> bool:
        await self._gate()
        self.data[key] = value
        return True

    async def delete(self, key: str) -> int:
        await self._gate()
        return int(self.data.pop(key, None) is not None)

    async def publish(self, channel: str, message: str) -> int:
        await self._gate()
        return 0


class Provider:
    def __init__(self) -> None:
        self.fetches = 0

    async def fetch(self) -> list[dict[str, Any]]:
        self.fetches += 1
        await asyncio.sleep(0.03)  # slow enough for concurrent misses to meet
        return [{"id": 77}]


def test_one_slow_moment_does_not_open_the_breaker_and_coalescing_holds() -> None:
    async def scenario() -> tuple[list[str], list[str], int, bool]:
        store, provider = StallingStore(), Provider()
        cache = ResultCache(store)  # type: ignore[arg-type]
        store.stalled = True  # one stall: four lookups in flight time out together
        during = await asyncio.gather(*(cache.get(f"k{i}", provider.fetch) for i in range(4)))
        store.stalled = False
        provider.fetches = 0
        after = await asyncio.gather(*(cache.get("k77", provider.fetch) for _ in range(12)))
        return ([how for _, how in during], [how for _, how in after], provider.fetches,
                cache.breaker.closed)

    during, after, fetches, closed = asyncio.run(scenario())
    assert during == ["bypass"] * 4  # those four were served from the provider, as they must
    assert closed, "one slow moment opened the breaker"
    assert after == ["miss"] * 12 and fetches == 1  # coalesced: one fetch for twelve misses


def test_redis_down_opens_the_breaker_after_two_calls_and_skips_it() -> None:
    async def scenario() -> tuple[list[str], int, bool]:
        store, provider = StallingStore(), Provider()
        cache = ResultCache(store)  # type: ignore[arg-type]
        store.stalled, store.stall_seconds = True, 0.01  # paused: every call times out
        served = [(await cache.get(f"k{i}", provider.fetch))[1] for i in range(5)]
        return served, store.calls, cache.breaker.closed

    served, calls, closed = asyncio.run(scenario())
    assert served == ["bypass"] * 5 and not closed
    assert calls == 2, "once open, requests must not wait for Redis at all"


def test_coalescing_holds_in_bypass() -> None:
    """A slow GET or a Redis that is down must not let a herd through: in bypass the
    concurrent misses on one key still share one fetch (CI saw 4 fetches for 12 misses on
    three engines after a Redis hiccup, where coalescing promises one per engine)."""
    async def scenario(coalesce: bool, misses: int) -> tuple[list[str], int]:
        store, provider = StallingStore(), Provider()
        cache = ResultCache(store)  # type: ignore[arg-type]
        cache.options.coalesce = coalesce
        store.stalled = True  # every GET in flight times out together
        served = await asyncio.gather(*(cache.get("k77", provider.fetch)
                                        for _ in range(misses)))
        return [how for _, how in served], provider.fetches

    served, fetches = asyncio.run(scenario(True, 12))
    assert served == ["bypass"] * 12 and fetches == 1
    # the switch still switches it off (within the bypass slots, beyond them it is a 503)
    served, fetches = asyncio.run(scenario(False, BYPASS_SLOTS))
    assert served == ["bypass"] * BYPASS_SLOTS and fetches == BYPASS_SLOTS


def test_sporadic_timeouts_among_successes_keep_it_closed() -> None:
    breaker = Breaker("redis")
    for _ in range(5):
        for _ in range(9):
            breaker.success()
        breaker.failure(time.monotonic())  # an independent slow answer, 1 in 10
    assert breaker.closed and breaker.failures == 5


def test_half_open_trial_failure_reopens_and_success_closes() -> None:
    # open for 0.5 s: each "still open" below is read the next statement after opening,
    # which a busy machine can delay by tens of milliseconds, not by half a second
    breaker = Breaker("redis", open_seconds=0.5)
    breaker.failure(time.monotonic())
    assert breaker.closed and breaker.last_failed
    breaker.failure(time.monotonic())
    assert not breaker.closed
    time.sleep(0.55)
    assert breaker.closed  # half-open: a trial goes through
    breaker.failure(time.monotonic())
    assert not breaker.closed, "a failed trial must reopen at once"
    time.sleep(0.55)
    breaker.success()
    breaker.failure(time.monotonic())
    assert breaker.closed, "after a success one failure is not enough"


def test_failures_leave_the_window() -> None:
    breaker = Breaker("redis", window=0.05)
    breaker.failure(time.monotonic())
    time.sleep(0.06)
    breaker.failure(time.monotonic())
    assert breaker.closed and breaker.failures == 1
