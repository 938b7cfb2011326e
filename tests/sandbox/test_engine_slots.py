"""An engine's worker slot is free while its query waits for a fetch, its own or another's.

The simulator's engine worker is free once a miss moves on to the connectors, whether the
attempt starts the key's fetch or joins the one in flight (coalescing,
``sim/model/cache.py``'s ``ReadThrough.fetch``). The stand-in's engine freed its slot only
for the query that started the fetch: a coalesced waiter held its slot for the whole fetch,
up to the engine's timeout. At cache_stampede_short_ttl's standin profile (2 slots per
engine, 3 s tickets fetches, a 1 s TTL) the slots were held by waiters, every other query
queued behind them, the engines' queues grew to hundreds (measured 2026-11-29 23:21) and
every query timed out from 20 s after the cold start to the end of the run.

Here a real :class:`sandbox.engine.Engine` with one slot meets an in-memory cache and a
connector fetch that takes :data:`FETCH_SECONDS` (no Redis, no HTTP). Bounded: 3 queries.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from sandbox.cache import CacheOptions, ResultCache, cache_key
from sandbox.engine import Engine, EngineConfig
from sandbox.sql import parse

pytestmark = pytest.mark.sandbox

HOT = "SELECT * FROM tickets.tickets WHERE id = 1 LIMIT 1"  # being fetched: a miss
CACHED = "SELECT * FROM crm.accounts WHERE id = 2 LIMIT 1"  # in the cache: a hit
#: The connector's fetch: long against a hit's few milliseconds, on a loaded machine too.
FETCH_SECONDS = 3.0
#: How long the hit may take while two queries wait for the fetch (it is a dict lookup).
HIT_SECONDS = 1.0


class FakeStore:
    """The Redis calls the cache makes on this path (``GET``, ``SET``; the fill's claim and
    release), in memory."""

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

    async def aclose(self) -> None:
        return None


def _engine(fetches: list[str]) -> Engine:
    """An engine with one worker slot, coalescing on, whose connector takes FETCH_SECONDS."""
    engine = Engine(EngineConfig("az-a", "engine-az-a", "v1", "http://127.0.0.1:1",
                                 redis_port=1, redis_password="", service_token="t",
                                 timeout=10.0, workers=1))
    store = FakeStore()
    entry = {"rows": [{"id": 2}], "fresh_until": time.time() + 600}
    store.data[cache_key("acme", parse(CACHED).fingerprint())] = json.dumps(entry)
    engine.cache = ResultCache(store)  # type: ignore[arg-type]
    engine.cache.options = CacheOptions(ttl=60.0, coalesce=True)

    async def fetch(tenant: str, query: Any, deadline: float | None = None) -> Any:
        fetches.append(tenant)
        await asyncio.sleep(FETCH_SECONDS)
        return [{"id": 1}]
    engine._fetch = fetch  # type: ignore[method-assign]
    return engine


def test_a_coalesced_query_frees_its_slot_while_it_waits() -> None:
    async def main() -> None:
        fetches: list[str] = []
        engine = _engine(fetches)
        try:
            first = asyncio.create_task(engine.run("acme", HOT))
            await asyncio.sleep(0.1)
            joined = asyncio.create_task(engine.run("acme", HOT))  # joins the fetch
            await asyncio.sleep(0.1)
            assert engine.slots.busy == 0, "a query waiting for a fetch holds its slot"
            started = time.monotonic()
            hit = await engine.run("acme", CACHED)
            took = time.monotonic() - started
            assert hit["cache"] == "hit" and took < HIT_SECONDS, (
                f"a hit waited {took:.2f} s behind the queries waiting for a fetch")
            answers = await asyncio.gather(first, joined)
            assert [a["cache"] for a in answers] == ["miss", "miss"]
            assert fetches == ["acme"]  # one fetch, shared
            assert engine.slots.busy == 0 and engine.slots.started == 3
        finally:
            await engine.close()
    asyncio.run(main())
