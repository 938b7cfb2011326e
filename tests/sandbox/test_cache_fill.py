"""The result cache's fill outlives its caller's patience (sandbox.cache), without Redis.

The simulator's connector writes the cache for an attempt whose client has given up
(docs/model.md, "Connectors"); the stand-in's engine used to drop the connector's answer at
its client's timeout, so at cache_stampede's standin limits most admitted provider calls of
a cold start never reached the cache (docs/conformance.md, cache_stampede's cold start).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from sandbox.cache import CacheOptions, ResultCache
from sandbox.errors import ApiError

ROWS = [{"id": 1}]


class FakeStore:
    """The Redis calls a miss makes (``GET``, ``SET``; the fill's claim and release), in
    memory."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str, ex: int | None = None, nx: bool = False,
                  px: int | None = None) -> bool:
        if nx and key in self.data:
            return False
        self.data[key] = value
        return True

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def publish(self, channel: str, message: str) -> None:
        return None


def _cache(coalesce: bool) -> tuple[ResultCache, FakeStore]:
    store = FakeStore()
    cache = ResultCache(store)  # type: ignore[arg-type]
    cache.options = CacheOptions(ttl=60.0, coalesce=coalesce)
    return cache, store


def _slow(seconds: float, calls: list[float]) -> Any:
    async def fetch() -> list[dict[str, Any]]:
        calls.append(seconds)
        await asyncio.sleep(seconds)
        return ROWS
    return fetch


@pytest.mark.parametrize("coalesce", [False, True])
def test_a_fill_stores_its_rows_after_its_caller_gave_up(coalesce: bool) -> None:
    async def main() -> None:
        cache, store = _cache(coalesce)
        calls: list[float] = []
        with pytest.raises(ApiError) as refused:
            await cache.get("k", _slow(0.3, calls), patience=0.05)
        assert refused.value.status == 504 and refused.value.code == "UPSTREAM_TIMEOUT"
        assert "k" not in store.data  # the fetch is still running
        await asyncio.sleep(0.5)
        assert json.loads(store.data["k"])["rows"] == ROWS
        assert await cache.get("k", _slow(0.3, calls), patience=0.05) == (ROWS, "hit")
        assert calls == [0.3]
    asyncio.run(main())


def test_coalesced_callers_share_the_fill_each_with_its_own_patience() -> None:
    async def main() -> None:
        cache, store = _cache(coalesce=True)
        calls: list[float] = []
        impatient = asyncio.create_task(cache.get("k", _slow(0.3, calls), patience=0.05))
        await asyncio.sleep(0.01)
        patient = asyncio.create_task(cache.get("k", _slow(0.3, calls), patience=2.0))
        done = await asyncio.gather(impatient, patient, return_exceptions=True)
        assert isinstance(done[0], ApiError) and done[0].status == 504
        assert done[1] == (ROWS, "miss")
        assert calls == [0.3] and "k" in store.data
    asyncio.run(main())


def test_a_bypassing_caller_joins_the_fill_in_flight() -> None:
    """The breaker may open between two misses on one key (a starved moment): the second,
    now bypassing the cache, still shares the first one's fetch."""
    async def main() -> None:
        cache, store = _cache(coalesce=True)
        calls: list[float] = []
        filling = asyncio.create_task(cache.get("k", _slow(0.3, calls), patience=2.0))
        await asyncio.sleep(0.05)
        cache.breaker.open_until = time.monotonic() + 10.0
        bypassing = await cache.get("k", _slow(0.3, calls), patience=2.0)
        assert bypassing == (ROWS, "bypass") and await filling == (ROWS, "miss")
        assert calls == [0.3] and "k" in store.data
    asyncio.run(main())


def test_without_coalescing_each_miss_fetches() -> None:
    async def main() -> None:
        cache, _ = _cache(coalesce=False)
        calls: list[float] = []
        got = await asyncio.gather(*(cache.get("k", _slow(0.1, calls), patience=1.0)
                                     for _ in range(3)))
        assert got == [(ROWS, "miss")] * 3 and calls == [0.1] * 3
    asyncio.run(main())


def test_a_failed_fill_stores_nothing_and_reaches_its_caller() -> None:
    async def main() -> None:
        cache, store = _cache(coalesce=False)

        async def refused() -> list[dict[str, Any]]:
            raise ApiError(429, "RATE_LIMIT_EXHAUSTED", "crm rate limit exhausted")
        with pytest.raises(ApiError) as err:
            await cache.get("k", refused, patience=1.0)
        assert err.value.status == 429 and store.data == {}
    asyncio.run(main())
