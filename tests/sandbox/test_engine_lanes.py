"""An engine's fetches beyond its lanes to the connector wait in the engine, not in httpx.

A miss frees its engine slot before the fetch (test_engine_slots), so nothing bounds how
many fetches an engine has in flight: in rate_limit_flood_mitigated's flood (cache disabled,
5 connector workers per zone, every fetch queued at the connector) they outgrew httpx's 100
connections and queued in httpx's pool, and httpcore (1.0.9) rescans every queued request
against every connection whenever a request joins or leaves it. Each engine spent 96% of its
CPU there (py-spy, 2026-11-30 03:30), answered neither queries nor health checks, and the
stand-in stayed at 100% timeouts after the flood and the operator's cap had ended.

Here a real :class:`sandbox.engine.Engine` (cache disabled) sends twice its lanes of queries
to a connector stand-in, a loopback HTTP/1.1 server that holds every answer until released,
through its own httpx pool, counted. Bounded: 2 x 200 queries, 60 s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from sandbox.cache import CacheOptions
from sandbox.engine import CONNECTOR_LANES, Engine, EngineConfig

pytestmark = pytest.mark.sandbox

SQL = "SELECT * FROM crm.accounts WHERE id = 1 LIMIT 1"
QUERIES = 2 * CONNECTOR_LANES
ANSWER = b'{"rows": [{"id": 1}]}'


class HeldConnector:
    """Answers POST /fetch once ``release`` is set; counts connections and requests."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.connections = 0
        self.received = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                self.received += 1
                await self.release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class CountingTransport(httpx.AsyncBaseTransport):
    """The engine's own transport (its pool), counting the requests inside it at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.inside, self.most = inner, 0, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.inside -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _until(condition: Any, what: str, seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


def test_fetches_past_the_lanes_wait_in_the_engine_not_in_httpx() -> None:
    async def main() -> None:
        connector = HeldConnector()
        server = await asyncio.start_server(connector.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        engine = Engine(EngineConfig("az-a", "engine-az-a", "v1", f"http://127.0.0.1:{port}",
                                     redis_port=1, redis_password="", service_token="t",
                                     timeout=60.0, workers=2))
        engine.cache.options = CacheOptions(enabled=False)
        pool = CountingTransport(engine.http._transport)
        engine.http._transport = pool
        try:
            first = [asyncio.create_task(engine.run("acme", SQL)) for _ in range(QUERIES)]
            await _until(lambda: len(engine._exchanges) == QUERIES, "every fetch started")
            await _until(lambda: connector.received == CONNECTOR_LANES, "the lanes in use")
            assert pool.most <= CONNECTOR_LANES, (
                f"{pool.most} fetches at once in httpx's pool, past its "
                f"{CONNECTOR_LANES} connections: they queue there")
            connector.release.set()
            answers = await asyncio.gather(*first)
            second = await asyncio.gather(*(engine.run("acme", SQL) for _ in range(QUERIES)))
            assert all(a["rows"][0]["id"] == 1 for a in answers + second)
            assert connector.received == 2 * QUERIES
            assert pool.most <= CONNECTOR_LANES
        finally:
            await engine.close()
            server.close()
    asyncio.run(asyncio.wait_for(main(), 60.0))
