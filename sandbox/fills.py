"""One fill per cache key in flight across every engine (request coalescing).

The scenario's coalescing is "one connector fetch per key in flight; other misses on the
key wait for it" (``sim/model/cache.py``'s ``ReadThrough``: one fetch per key, whatever
the zone). The stand-in's engines coalesced only their own misses: with the gateway's round
robin over 3 zones a hot key had up to 3 fetches in flight. At cache_stampede_short_ttl's
standin profile, whose connectors are saturated, that kept about 3.5 times as many fills
queued or running as the simulator's (about 150 against 43: 14 s queue waits against
3.4 s), and 74% of queries timed out against the simulator's 25%.

An engine claims a key's fill with a Redis ``SET NX`` (it expires after
:data:`CLAIM_SECONDS`, should its holder die); the others wait for it. The holder
publishes the key on :data:`CHANNEL` when its fill ends, which wakes the waiters at once;
they also re-read the key every :data:`RECHECK_SECONDS`, so a lost message (or a listener
reconnecting) only delays them. A fill that ended without fresh rows (it failed) lets the
next waiter claim the key and fetch. An engine that wins a claim re-reads the key before it
fetches: another engine's fill may have stored the rows and released its claim between this
engine's lookup and its claim. Within an engine, callers share one waiter per key
(``sandbox.cache``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["CHANNEL", "CLAIM_SECONDS", "RECHECK_SECONDS", "SharedFills", "claim_key", "fresh_rows"]

CHANNEL = "omnisql:filled"
#: How long a claim lasts unless released: longer than an engine's fill may run
#: (``sandbox.engine.FILL_TIMEOUT``, 120 s), so a slow fill is not duplicated.
CLAIM_SECONDS = 130.0
#: How often a waiter re-reads the key besides the holder's message.
RECHECK_SECONDS = 0.5
Rows = list[dict[str, Any]]


def claim_key(key: str) -> str:
    return f"{key}:fill"


def fresh_rows(raw: bytes | str | None) -> Rows | None:
    """The rows of a stored cache entry while it is fresh, else None."""
    if raw is None:
        return None
    entry = json.loads(raw)
    return list(entry["rows"]) if entry["fresh_until"] > time.time() else None


class SharedFills:
    """Claims, releases and waits for fills shared through Redis."""

    def __init__(self, store: aioredis.Redis) -> None:
        self.store = store
        self._woken: dict[str, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None

    async def claim(self, key: str) -> bool:
        """Whether this engine is to fill ``key`` (no other engine is filling it)."""
        return bool(await self.store.set(claim_key(key), "1", nx=True,
                                         px=int(CLAIM_SECONDS * 1000)))

    async def release(self, key: str) -> None:
        """The fill of ``key`` ended (stored or failed): wake the other engines' waiters."""
        with contextlib.suppress(RedisError):
            await self.store.delete(claim_key(key))
            await self.store.publish(CHANNEL, key)

    async def wait(self, key: str) -> Rows | None:
        """The rows another engine's fill of ``key`` stored, or None once that fill ended
        without fresh rows (then the caller claims the key itself). Raises RedisError."""
        woken = self._woken.setdefault(key, asyncio.Event())
        self._listen()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), RECHECK_SECONDS)
                woken.clear()
                raw, claimed = await self.store.mget(key, claim_key(key))
                rows = fresh_rows(raw)
                if rows is not None:
                    return rows
                if claimed is None:
                    return None
        finally:
            if self._woken.get(key) is woken:
                del self._woken[key]

    def _listen(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen_forever())

    async def _listen_forever(self) -> None:
        """Wake the local waiter of each key published; reconnects after an error (the
        waiters' re-reads cover the gap)."""
        while True:
            try:
                async with self.store.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None:
                            self._wake(message["data"])
            except (RedisError, OSError, TimeoutError):
                await asyncio.sleep(RECHECK_SECONDS)

    def _wake(self, data: bytes | str) -> None:
        key = data.decode() if isinstance(data, bytes) else data
        woken = self._woken.get(key)
        if woken is not None:
            woken.set()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
