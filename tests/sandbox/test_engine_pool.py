"""An engine serves again once an overload that cut thousands of fetches short is over.

The engine's fetches go to its connector over one httpx client. A caller that runs out of
patience (``sandbox.cache``) used to cancel the HTTP exchange itself, and httpcore 1.0.9
loses a pool slot for good when a request is cancelled just as the pool hands it a
connection (encode/httpcore#1093). A long open-loop flood (rate_limit_flood's standin
profile, measured 2026-11-29 20:10) lost all 100 slots: after the flood every fetch and
every health probe of the engine waited for a connection that never came, every zone was
unhealthy and every query a 504, with the engines' and connectors' pools idle.

Here a real :class:`sandbox.engine.Engine` talks to a stand-in connector on loopback, in
this process; staggered waves of callers give up before the connector answers, as a flood's
clients do. Bounded: 3 waves of 250 queries, then at most :data:`RECOVERY` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.cache import CacheOptions
from sandbox.engine import Engine, EngineConfig
from sandbox.errors import ApiError

pytestmark = pytest.mark.sandbox

SQL = "SELECT * FROM crm.accounts WHERE id = 1 LIMIT 1"
#: How long the stand-in connector takes per fetch: longer than the callers' patience.
FETCH_SECONDS = 1.0
#: The callers' patience during the overload (the engine's timeout).
PATIENCE = 0.6
#: Seconds after the overload within which the engine must serve again: the abandoned
#: fetches still run, 100 at a time (httpx's pool), about 750 x FETCH_SECONDS / 100 = 8 s;
#: the rest is slack for a starved CI machine. Without the fix the engine never serves again.
RECOVERY = 30.0


async def _fetch(request: Request) -> Response:
    await asyncio.sleep(FETCH_SECONDS)
    return JSONResponse({"rows": [{"id": 1, "name": "a"}]})


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@contextlib.asynccontextmanager
async def _connector() -> AsyncIterator[str]:
    """A connector answering /fetch after FETCH_SECONDS, on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = Starlette(routes=[Route("/fetch", _fetch, methods=["POST"]),
                            Route("/health", _health)])
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def _impatient(engine: Engine, delay: float) -> None:
    await asyncio.sleep(delay)
    with contextlib.suppress(ApiError):  # 504: the caller gave up, the fetch goes on
        await engine.run("acme", SQL)


async def _serves(engine: Engine) -> bool:
    try:
        answer = await engine.run("acme", SQL)
    except ApiError:
        return False
    return bool(answer["rows"]) and await engine.connector_ok()


def test_an_engine_serves_again_after_an_overload_of_abandoned_fetches() -> None:
    async def main() -> None:
        async with _connector() as url:
            engine = Engine(EngineConfig("az-a", "engine-az-a", "v1", url, redis_port=1,
                                         redis_password="", service_token="t",
                                         timeout=5.0))
            engine.cache.options = CacheOptions(enabled=False)  # rate_limit_flood's cache
            try:
                assert await _serves(engine)
                engine.timeout = PATIENCE
                for _ in range(3):  # callers arriving every 3 ms, each waiting 0.6 s
                    await asyncio.gather(*(_impatient(engine, k * 0.003) for k in range(250)))
                engine.timeout = 5.0
                stop, served = time.monotonic() + RECOVERY, False
                while not served and time.monotonic() < stop:
                    served = await _serves(engine)
                assert served, f"the engine still cannot fetch {RECOVERY:.0f} s after the load"
            finally:
                await engine.close()
    asyncio.run(main())
