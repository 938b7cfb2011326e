"""Coalescing holds across engines: one fill per key in flight, whatever the engine.

The scenario's coalescing is one connector fetch per key in flight (the simulator's
``ReadThrough``); the stand-in's engines coalesced only their own misses, so the gateway's
round robin over 3 zones let a hot key have 3 fetches in flight (``sandbox.fills``). Here
two :class:`sandbox.cache.ResultCache` (two engines) share a real Redis started for the
test, on loopback. Bounded: a handful of queries, each test within seconds.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sandbox import fills
from sandbox.cache import CacheOptions, ResultCache, hot_path_redis
from sandbox.errors import ApiError

pytestmark = pytest.mark.sandbox

ROWS = [{"id": 1}]
FETCH_SECONDS = 1.0


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A throwaway redis-server on a free loopback port, without persistence."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        stop = time.monotonic() + 10.0
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > stop:
                    raise
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        server.terminate()
        server.wait(10)


def _engines(port: int) -> list[ResultCache]:
    caches = [ResultCache(hot_path_redis(port, "")) for _ in range(2)]
    for cache in caches:
        cache.options = CacheOptions(ttl=60.0, coalesce=True)
    return caches


async def _close(caches: list[ResultCache]) -> None:
    for cache in caches:
        await cache.fills.close()
        await cache.store.aclose()


def _fetch(calls: list[str], name: str, fail: bool = False) -> Any:
    async def fetch() -> list[dict[str, Any]]:
        calls.append(name)
        await asyncio.sleep(FETCH_SECONDS)
        if fail:
            raise ApiError(429, "RATE_LIMIT_EXHAUSTED", "tickets rate limit exhausted")
        return ROWS
    return fetch


def test_two_engines_share_one_fill_and_the_waiter_is_woken(
        redis_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Re-reads far apart: only the holder's message can end the wait in time.
    monkeypatch.setattr(fills, "RECHECK_SECONDS", 30.0)

    async def main() -> None:
        caches, calls = _engines(redis_port), []
        try:
            first = asyncio.create_task(caches[0].get("k", _fetch(calls, "a"), 10.0))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            second = await caches[1].get("k", _fetch(calls, "b"), 10.0)
            took = time.monotonic() - started
            assert await first == (ROWS, "miss") and second == (ROWS, "miss")
            assert calls == ["a"], "the second engine fetched a key the first was fetching"
            assert took < 5.0, f"the waiter was not woken by the fill's end ({took:.1f} s)"
            assert await caches[1].store.get("k:fill") is None  # the claim is released
        finally:
            await _close(caches)
    asyncio.run(main())


def test_a_failed_fill_lets_the_waiting_engine_fetch(redis_port: int) -> None:
    async def main() -> None:
        caches, calls = _engines(redis_port), []
        try:
            first = asyncio.create_task(caches[0].get("k", _fetch(calls, "a", fail=True), 10.0))
            await asyncio.sleep(0.2)
            second = await caches[1].get("k", _fetch(calls, "b"), 10.0)
            with pytest.raises(ApiError):
                await first
            assert second == (ROWS, "miss") and calls == ["a", "b"]
        finally:
            await _close(caches)
    asyncio.run(main())


def test_a_miss_read_before_another_engines_fill_stored_does_not_fetch_again(
        redis_port: int) -> None:
    """The race CI met (two provider calls for one hot key): engine b looked the key up
    and missed while engine a's fill ran; a stored the rows and released its claim; then b
    claimed the key. b's fill must serve what a stored, not call the provider again."""
    async def main() -> None:
        caches, calls = _engines(redis_port), []
        try:
            assert await caches[0].get("k", _fetch(calls, "a"), 10.0) == (ROWS, "miss")
            assert await caches[1].store.get("k:fill") is None  # a's claim is released
            # b's fill, as it runs after a lookup that missed before a stored the rows:
            assert await caches[1]._fill("k", _fetch(calls, "b"), 10.0) == ROWS
            assert calls == ["a"], "the second engine fetched rows the first had stored"
            assert await caches[1].store.get("k:fill") is None  # b released its claim
        finally:
            await _close(caches)
    asyncio.run(main())
