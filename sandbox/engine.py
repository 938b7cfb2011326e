"""An engine instance (per AZ, plus the canary): parses the SQL subset, serves from the cache,
fetches through its AZ's connector on a miss.

The canary is the same code started with another version; `/_control` lets the admin API
give it a version, an injected error rate and a latency multiplier (a faulty release).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.auth import internal_headers
from sandbox.cache import ResultCache, cache_key, hot_path_redis
from sandbox.deadline import budget_headers, deadline_from
from sandbox.errors import ApiError
from sandbox.metrics import CACHE_RESULTS, ENGINE_WORK, LATENCY, REQUESTS, metrics_endpoint
from sandbox.sections import engine_section
from sandbox.service import EXCEPTION_HANDLERS, handle_errors, read_json
from sandbox.slots import Slots
from sandbox.sql import Query, connector_of, parse
from sandbox.standin import derive_seed
from sandbox.tasks import tasks_endpoint

__all__ = ["Engine", "EngineConfig", "Release", "build_app"]

# What a latency multiplier of M adds: (M - 1) x this, per request. A cache hit takes about a
# millisecond, so multiplying the real handling time would be invisible.
CANARY_LATENCY_UNIT = 0.05
#: How long a fill waits for its connector, past its client's timeout (``sandbox.cache``):
#: only a safety net, as the connector ends every fetch itself (its call timeout and retry
#: rule: 3 x 10 s calls and 2 waits of at most 5 s at cache_stampede), besides its queue.
FILL_TIMEOUT = 120.0
#: The health probe's wait for the connector's ``/health``.
HEALTH_TIMEOUT = 0.5
#: Exchanges with the connector in flight at once, and the size of the fetches' httpx pool
#: (httpx's defaults: 100 connections, 20 kept alive); the others wait their turn, first
#: come first served, in the engine's own queue (see ``_post``).
CONNECTOR_LANES = 100
_CONNECTOR_POOL = httpx.Limits(max_connections=CONNECTOR_LANES, max_keepalive_connections=20)


@dataclass(frozen=True)
class EngineConfig:
    zone: str
    name: str  # "engine-az-a" or "engine-canary"
    version: str
    connector_url: str
    redis_port: int
    redis_password: str
    service_token: str
    timeout: float = 9.0
    #: Worker slots and queue (``sandbox.standin``'s ``engine`` section); None: no limit.
    workers: int | None = None
    queue_limit: int | None = None


@dataclass
class Release:
    """The running version and, for a canary, its injected faults."""

    version: str
    error_rate: float = 0.0
    latency_multiplier: float = 1.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))


class Engine:
    """Runs queries for tenants: cache first, connector on a miss."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.scope = f"{config.zone}.{'canary' if 'canary' in config.name else 'engine'}"
        self.release = Release(config.version)
        # Short socket timeouts: a paused Redis must trip the breaker, not stall requests.
        self.store = hot_path_redis(config.redis_port, config.redis_password)
        self.cache = ResultCache(self.store)
        self.slots = Slots(config.name, config.workers, config.queue_limit)
        self.timeout = config.timeout
        self.http = httpx.AsyncClient(timeout=config.timeout, limits=_CONNECTOR_POOL,
                                      headers=internal_headers(config.service_token))
        self._lanes = asyncio.Semaphore(CONNECTOR_LANES)
        # The health probe's own client: it reports whether the connector answers, not
        # whether the fetches' pool has a free connection.
        self.probe = httpx.AsyncClient(timeout=HEALTH_TIMEOUT,
                                       limits=httpx.Limits(max_connections=2))
        self._exchanges: set[asyncio.Task[httpx.Response]] = set()

    async def close(self) -> None:
        for exchange in self._exchanges:
            exchange.cancel()
        await self.cache.fills.close()
        await self.http.aclose()
        await self.probe.aclose()
        await self.store.aclose()

    async def run(self, tenant: str, sql: str, deadline: float | None = None) -> dict[str, Any]:
        """Serve one query holding an engine slot for parsing and the cache lookup; a miss
        frees the slot before the connector fetch, as the simulator's engine worker does,
        whether it starts the fetch or joins one in flight (coalescing): a waiter that held
        its slot through another's 3 s fetch starved the 2 slots of cache_stampede_short_ttl's
        standin engine, whose queue then never drained (every query a 504).
        ``deadline``: when the client gives up (:mod:`sandbox.deadline`), passed on to the
        connector with the fetch (a coalesced fetch carries its first caller's). The answer
        waits at most the engine's timeout; the fill goes on and stores its rows."""
        await self.slots.acquire()
        held, acquired, looking = True, time.perf_counter(), 0.0

        def free() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.release()
                if looking:  # the slot's time, in the simulator's two parts
                    ENGINE_WORK.labels(self.scope, "service").observe(looking - acquired)
                    if self.cache.options.enabled and self.cache.breaker.closed:
                        ENGINE_WORK.labels(self.scope, "cache_lookup").observe(
                            time.perf_counter() - looking)

        try:
            await self._inject_faults()
            query = parse(sql)
            looking = time.perf_counter()
            rows, how = await self.cache.get(
                cache_key(tenant, query.fingerprint()),
                lambda: self._fetch(tenant, query, deadline), self.timeout, on_miss=free)
        finally:
            free()
        CACHE_RESULTS.labels(self.scope, tenant, how).inc()
        return {"rows": rows, "cache": how, "zone": self.config.zone,
                "version": self.release.version}

    def settings(self) -> dict[str, Any]:
        return {"workers": self.slots.workers, "queue_limit": self.slots.queue_limit,
                "timeout_seconds": self.timeout}

    def apply(self, body: Any) -> dict[str, Any]:
        section = engine_section(body)
        self.slots.resize(section["workers"], section["queue_limit"])
        self.timeout = section["timeout_seconds"]
        return self.settings()

    async def _inject_faults(self) -> None:
        rel = self.release
        if rel.latency_multiplier > 1.0:
            await asyncio.sleep((rel.latency_multiplier - 1.0) * CANARY_LATENCY_UNIT)
        if rel.error_rate > 0 and rel.rng.random() < rel.error_rate:
            raise ApiError(500, "INTERNAL", f"engine {rel.version} failed (injected canary fault)")

    async def _fetch(self, tenant: str, query: Query,
                     deadline: float | None = None) -> list[dict[str, Any]]:
        body = {"tenant": tenant, "provider": query.connector, "object": query.obj,
                "where": list(query.where) if query.where else None, "limit": query.limit}
        try:
            resp = await self._exchange(body, budget_headers(deadline))
        except httpx.TimeoutException:
            raise ApiError(504, "UPSTREAM_TIMEOUT",
                           f"connector-{self.config.zone} did not answer in time") from None
        except httpx.HTTPError:
            # The gateway retries this one in another zone: nothing reached the provider.
            raise ApiError(502, "CONNECTOR_UNAVAILABLE",
                           f"connector-{self.config.zone} unreachable") from None
        try:
            data = resp.json()
        except ValueError:
            raise ApiError(502, "PROVIDER_ERROR", "connector sent a malformed answer") from None
        if resp.status_code != 200:
            err = data.get("error", {})
            raise ApiError(resp.status_code, str(err.get("code", "PROVIDER_ERROR")),
                           str(err.get("message", "connector failed")), err.get("retry_after"))
        return [{c: row.get(c) for c in query.columns} for row in data["rows"]]

    async def _exchange(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """POST /fetch in a task no caller's cancellation reaches: a caller past its
        patience stops waiting and the exchange ends on httpx's own timeouts. httpcore
        (1.0.9) loses a pool slot for good when a request is cancelled just as the pool
        hands it a new connection (encode/httpcore#1093); the cache's patience cancelled
        thousands during a flood, until all 100 slots were lost and every fetch and health
        probe of the engine waited for a connection that never came."""
        exchange = asyncio.create_task(self._post(body, headers))
        self._exchanges.add(exchange)
        exchange.add_done_callback(_finished)
        exchange.add_done_callback(self._exchanges.discard)
        return await asyncio.shield(exchange)

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """One exchange, once one of the :data:`CONNECTOR_LANES` is free. Past them it
        waits here, not in httpx's pool: httpcore rescans every queued request against
        every connection whenever a request joins or leaves its pool, so with a miss
        freeing its slot before the fetch (nothing else bounds an engine's fetches)
        rate_limit_flood_mitigated's flood queued its fetches there, each engine spent 96%
        of its CPU in that scan (py-spy, 2026-11-30 03:30), answered neither queries nor
        health checks, and stayed so after the flood and the cap ended. The wait is
        bounded as httpx's pool wait was (:data:`FILL_TIMEOUT`)."""
        try:
            async with asyncio.timeout(FILL_TIMEOUT):
                await self._lanes.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no lane to the connector in time") from None
        try:
            return await self.http.post(f"{self.config.connector_url}/fetch", json=body,
                                        headers=headers, timeout=FILL_TIMEOUT)
        finally:
            self._lanes.release()

    async def connector_ok(self) -> bool:
        try:
            resp = await self.probe.get(f"{self.config.connector_url}/health")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        version = body.get("version", self.release.version)
        error_rate = body.get("error_rate", 0.0)
        multiplier = body.get("latency_multiplier", 1.0)
        seed = body.get("seed", 0)
        if not isinstance(version, str) or not version:
            raise ApiError(400, "BAD_REQUEST", "version must be a non-empty string")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ApiError(400, "BAD_REQUEST", "seed must be an integer")
        self.release = Release(version, float(error_rate), float(multiplier),
                               random.Random(derive_seed(seed, "release.canary.errors")))
        return {"version": version, "error_rate": error_rate, "latency_multiplier": multiplier}


def _finished(exchange: asyncio.Task[httpx.Response]) -> None:
    """Read an exchange's outcome, so one nobody waited for is not logged as lost."""
    if not exchange.cancelled():
        exchange.exception()


async def _poll_options(engine: Engine) -> None:
    # Options change rarely (runbook actions); a 1 s poll keeps Redis off the hot path.
    while True:
        with contextlib.suppress(Exception):
            await engine.cache.reload_options()
        await asyncio.sleep(1.0)


def _tenant_and_sql(body: dict[str, Any]) -> tuple[str, str]:
    tenant, sql = body.get("tenant"), body.get("sql")
    if not isinstance(tenant, str) or not tenant or not isinstance(sql, str):
        raise ApiError(400, "BAD_REQUEST", "need tenant and sql strings")
    return tenant, sql


def build_app(config: EngineConfig) -> Starlette:
    engine = Engine(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        poller = asyncio.create_task(_poll_options(engine))
        yield
        poller.cancel()
        await engine.close()

    async def query(request: Request) -> Response:
        started = time.perf_counter()
        body: dict[str, Any] = {}
        response = await _query(request, body)
        REQUESTS.labels(engine.scope, str(response.status_code), str(body.get("tenant", ""))[:32],
                        connector_of(body.get("sql"))).inc()
        LATENCY.labels(engine.scope, "").observe(time.perf_counter() - started)
        response.headers["x-omnisql-cache"] = body.get("_cache", "")
        return response

    @handle_errors
    async def _query(request: Request, body: dict[str, Any]) -> Response:
        body.update(await read_json(request))
        result = await engine.run(*_tenant_and_sql(body), deadline_from(request.headers))
        body["_cache"] = result["cache"]  # lets the gateway count hits without parsing rows
        return JSONResponse(result)

    async def health(request: Request) -> Response:
        # The engine is only as healthy as its connector: without it every miss fails, so
        # the gateway must route around the zone (the cache's state is reported, not fatal).
        opts = engine.cache.options
        connector = await engine.connector_ok()
        return JSONResponse({"status": "ok" if connector else "degraded", "zone": config.zone,
                             "connector": "ok" if connector else "unreachable",
                             "cache": "ok" if engine.cache.breaker.closed else "unavailable",
                             "version": engine.release.version, "soft_cache": opts.soft_cache,
                             "coalesce": opts.coalesce, "ttl_seconds": opts.ttl},
                            200 if connector else 503)

    @handle_errors
    async def control(request: Request) -> Response:
        return JSONResponse(engine.configure(await read_json(request)))

    @handle_errors
    async def settings(request: Request) -> Response:
        if request.method == "POST":
            engine.apply(await read_json(request))
            # The admin service wrote the cache options first: take them now, not at the
            # next 1 s poll, so a query after `POST /admin/scenario` meets them.
            with contextlib.suppress(Exception):
                await engine.cache.reload_options()
        return JSONResponse({**engine.settings(), "slots": engine.slots.snapshot()})

    async def stats(request: Request) -> Response:
        # The worker pool's running totals: a runner's engine.utilization per window.
        return JSONResponse({"slots": engine.slots.snapshot()})

    return Starlette(exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan, routes=[
        Route("/query", query, methods=["POST"]), Route("/_control", control, methods=["POST"]),
        Route("/_control/config", settings, methods=["GET", "POST"]),
        Route("/_control/stats", stats), Route("/_control/tasks", tasks_endpoint),
        Route("/health", health), Route("/metrics", metrics_endpoint),
    ])
