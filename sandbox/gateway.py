"""The gateway: tenant API keys, per-user concurrency caps, AZ-aware routing, canary split,
blue-green cutover (sandbox.cutover).

Request path: authenticate (in-memory key table) → validate body and SQL here, so bad input
never reaches an engine → check the user's cap → forward to an engine chosen by the router,
retrying once in another AZ if that engine cannot be reached → record one fact for the stats.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.auth import internal_headers
from sandbox.cutover import GREEN, Cutover, Tracked, cutover_route
from sandbox.deadline import budget_headers
from sandbox.directory import Directory
from sandbox.errors import ApiError, error_response
from sandbox.metrics import LATENCY, REQUESTS, metrics_endpoint
from sandbox.region import RegionGate
from sandbox.routing import Backend, Router
from sandbox.sections import gateway_section
from sandbox.service import EXCEPTION_HANDLERS, MAX_BODY, handle_errors, read_json
from sandbox.sql import connector_of, parse
from sandbox.standin import derive_seed
from sandbox.stats import MAX_WINDOW, Fact, StatsWindow
from sandbox.tasks import tasks_endpoint
from sandbox.versions import VersionTally

__all__ = ["Gateway", "GatewayConfig", "build_app"]

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Failures that mean "this engine is gone", worth a retry in another AZ.
_RETRYABLE = (aiohttp.ClientConnectionError,)
# Engine answers that mean "this zone cannot serve it now; nothing reached the provider":
# queries are reads, so trying another zone is safe.
_RETRY_CODES = frozenset({"CONNECTOR_UNAVAILABLE", "CACHE_UNAVAILABLE"})
_RETRY_MARGIN = 1.0  # seconds of the client's budget a retry must still have


class _ZoneCannotServe(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("zone cannot serve")
        self.response = response


@dataclass(frozen=True)
class GatewayConfig:
    engines: dict[str, str]  # zone -> engine url
    canary_url: str
    canary_zone: str
    pg_ports: list[int]
    service_token: str = ""
    timeout: float = 10.0
    #: The ``gateway`` section of ``sandbox.standin`` (None: today's defaults).
    settings: dict[str, Any] | None = None
    #: zone -> green engine url (a blue-green cutover's other colour; none: no cutover).
    green: dict[str, str] = field(default_factory=dict)


@dataclass
class QueryContext:
    """What the gateway learned about one request, for metrics and the query log."""

    tenant: str = ""
    user: str = ""
    sql: str = ""
    detail: str = ""


@dataclass
class Gateway:
    config: GatewayConfig
    router: Router
    directory: Directory
    stats: StatsWindow = field(default_factory=StatsWindow)
    versions: VersionTally = field(default_factory=VersionTally)  # the canary analysis's
    region: RegionGate = field(default_factory=RegionGate)  # a region loss (sandbox.region)
    cutover: Cutover = field(default_factory=Cutover)  # blue-green (sandbox.cutover)
    inflight: dict[tuple[str, str], int] = field(default_factory=dict)
    # httpx for health checks; aiohttp on the hot path, where it costs about half the CPU.
    http: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)
    session: aiohttp.ClientSession | None = None
    timeout: float = 10.0
    #: Today's stand-in retries a dead or refusing zone at once elsewhere; a scenario turns
    #: it off (the simulator's balancer learns only from health checks; clients retry).
    zone_retry: bool = True

    def __post_init__(self) -> None:
        self.timeout = self.config.timeout
        if self.config.settings is not None:
            self.apply(self.config.settings)

    def apply(self, body: Any) -> dict[str, Any]:
        section = gateway_section(body)
        self.timeout, self.zone_retry = section["timeout_seconds"], section["zone_retry"]
        self.router.configure(section["health_check"])
        return self.settings()

    def settings(self) -> dict[str, Any]:
        return {"timeout_seconds": self.timeout, "zone_retry": self.zone_retry,
                "health_check": self.router.health_settings()}

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=25),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            headers=internal_headers(self.config.service_token))

    def authenticate(self, request: Request, info: QueryContext) -> None:
        header = request.headers.get("authorization", "")
        tenant = self.directory.tenant_for(header[7:]) if header.startswith("Bearer ") else None
        if tenant is None:
            raise ApiError(401, "UNAUTHORIZED", "missing or invalid API key")
        info.tenant = tenant
        user = request.headers.get("x-omnisql-user", "")
        if not _USER.match(user):
            raise ApiError(400, "BAD_REQUEST", "X-OmniSQL-User header missing or malformed")
        info.user = user

    def admit(self, info: QueryContext) -> tuple[str, str]:
        slot = (info.tenant, info.user)
        cap = self.directory.cap_for(*slot)
        if cap is not None and self.inflight.get(slot, 0) >= cap:
            raise ApiError(429, "CONCURRENCY_CAP",
                           f"user {info.user} is at its concurrency cap of {cap}", retry_after=1)
        self.inflight[slot] = self.inflight.get(slot, 0) + 1
        return slot

    def release(self, slot: tuple[str, str]) -> None:
        left = self.inflight[slot] - 1
        if left:
            self.inflight[slot] = left
        else:  # user names are client-chosen: keep the table as small as the traffic
            del self.inflight[slot]

    async def forward(self, info: QueryContext) -> Response:
        """Send to an engine; on a dead engine or a zone that cannot serve (its connector or
        the cache down), try the other zones while the client's budget allows."""
        tried: set[str] = set()
        started, last = time.monotonic(), None
        while not tried or time.monotonic() - started < self.timeout - _RETRY_MARGIN:
            backend = self.router.choose(tried)
            if backend is None:
                break
            try:
                return await self._tracked(backend, info, started + self.timeout)
            except _RETRYABLE:
                if not self.zone_retry:
                    raise ApiError(502, "ENGINE_UNAVAILABLE",
                                   f"{backend.name} is unreachable") from None
                self.router.failed(backend)
            except _ZoneCannotServe as refused:
                if not self.zone_retry:
                    return refused.response
                last = refused.response
            tried.add(backend.name)
        if last is not None:  # every zone tried answered why it could not: say that
            return last
        raise ApiError(503, "NO_HEALTHY_AZ", "no healthy availability zone can serve the query")

    async def _tracked(self, backend: Backend, info: QueryContext,
                       deadline: float) -> Response:
        """An attempt on a blue or green engine, cut if that colour is torn down under it:
        the client gets 503 ENGINE_UNAVAILABLE, never a retry in another zone."""
        if backend.colour not in ("blue", GREEN):  # the canary is not part of a cutover
            return await self._attempt(backend, info, deadline)
        tracked: Tracked = self.cutover.enter(backend.colour)
        try:
            async with tracked.scope:
                return await self._attempt(backend, info, deadline)
        except TimeoutError:
            if not tracked.cut:
                raise
            raise ApiError(503, "ENGINE_UNAVAILABLE",
                           f"{backend.name} was torn down (blue-green cutover)") from None
        finally:
            self.cutover.leave(tracked)

    def cut_over(self, version: str, drain_timeout: float) -> dict[str, Any]:
        """New attempts to the standby colour from now; the old one drains (sandbox.cutover)."""
        if not self.router.standby:
            raise ApiError(409, "CONFLICT", "this stand-in has no green engines")
        if self.cutover.phase == "draining":
            raise ApiError(409, "CONFLICT", "a cutover is still draining")
        self.router.switch()  # no await between the two: no attempt slips past the switch
        return self.cutover.switch(version, drain_timeout)

    def reset_cutover(self) -> dict[str, Any]:
        if self.router.colour != "blue" and self.router.standby:
            self.router.switch()
        return self.cutover.reset()

    async def _attempt(self, backend: Backend, info: QueryContext,
                       deadline: float) -> Response:
        """One engine attempt, counted for the canary analysis by the version it reached."""
        canary, status, started = backend is self.router.canary, 0, time.monotonic()
        self.versions.routed(canary)
        try:
            response = await self._send(backend, info, deadline)
            status = response.status_code
            return response
        except _ZoneCannotServe as refused:
            status = refused.response.status_code
            raise
        finally:
            self.versions.record(canary, status == 200, time.monotonic() - started)

    async def _send(self, backend: Backend, info: QueryContext, deadline: float) -> Response:
        assert self.session is not None
        try:
            async with self.session.post(f"{backend.url}/query",
                                         json={"tenant": info.tenant, "sql": info.sql},
                                         headers=budget_headers(deadline),
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)
                                         ) as resp:
                content = await resp.read()
                status, headers = resp.status, resp.headers
        except TimeoutError:
            raise ApiError(504, "UPSTREAM_TIMEOUT", "the query timed out upstream") from None
        info.detail = headers.get("x-omnisql-cache", "") if status == 200 else _error_code(content)
        extra = {"retry-after": headers["retry-after"]} if "retry-after" in headers else None
        response = Response(content, status, extra, "application/json")
        if status in (502, 503) and info.detail in _RETRY_CODES:
            raise _ZoneCannotServe(response)
        return response

    def record(self, info: QueryContext, status: int, latency: float) -> None:
        conn = connector_of(info.sql)
        REQUESTS.labels("gateway", str(status), info.tenant, conn).inc()
        LATENCY.labels("gateway", conn).observe(latency)
        self.stats.record(Fact(time.time(), status, info.tenant, latency, info.detail))
        if info.tenant:
            digest = hashlib.sha256(info.sql.encode()).hexdigest()[:16]
            self.directory.log((info.tenant, info.user, digest, status, latency * 1000.0))


def _error_code(content: bytes) -> str:
    try:
        return str(json.loads(content)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def _check_fields(body: dict[str, Any], tenant: str) -> None:
    # The tenant comes from the API key only; asking for another one is an attack, not a typo.
    if "tenant" in body and body["tenant"] != tenant:
        raise ApiError(403, "FORBIDDEN", "an API key can only query its own tenant")
    unknown = set(body) - {"sql", "tenant"}
    if unknown:
        raise ApiError(400, "BAD_REQUEST", f"unknown body fields {sorted(unknown)}")


async def _resolve_region(gw: Gateway) -> None:
    """During a region loss and its DNS shift, a client still resolving the lost region is
    refused fast (503), or with blackhole gets no answer until its timeout."""
    answer = gw.region.admit()
    if answer == "pass":
        return
    if answer == "hang":
        await asyncio.sleep(gw.timeout)
        raise ApiError(504, "UPSTREAM_TIMEOUT", "the query timed out upstream")
    raise ApiError(503, "REGION_UNAVAILABLE", "the region serving this name is unavailable")


async def _handle(gw: Gateway, request: Request, info: QueryContext) -> Response:
    gw.authenticate(request, info)
    await _resolve_region(gw)
    body = await read_json(request, MAX_BODY)
    _check_fields(body, info.tenant)
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise ApiError(400, "BAD_REQUEST", 'body must be {"sql": "<query>"}')
    info.sql = sql
    parse(sql)  # 400/404 here, before any engine is bothered
    slot = gw.admit(info)
    try:
        return await gw.forward(info)
    finally:
        gw.release(slot)


def _window(request: Request) -> float:
    raw = request.query_params.get("window", "30")
    try:
        window = float(raw)
    except ValueError:
        window = -1.0
    if not 1 <= window <= MAX_WINDOW:
        raise ApiError(400, "BAD_REQUEST", f"window must be seconds in [1, {MAX_WINDOW:.0f}]")
    return window


def _slow_above(request: Request) -> float | None:
    raw = request.query_params.get("slow_above")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < math.inf:
        raise ApiError(400, "BAD_REQUEST", "slow_above must be a positive number of seconds")
    return seconds


def build_gateway(config: GatewayConfig) -> Gateway:
    engines = [Backend(f"engine-{z}", z, url) for z, url in config.engines.items()]
    canary = Backend("engine-canary", config.canary_zone, config.canary_url, "canary")
    green = [Backend(f"engine-green-{z}", z, url, GREEN) for z, url in config.green.items()]
    return Gateway(config, Router(engines, canary, green), Directory(config.pg_ports))


def _internal_routes(gw: Gateway) -> list[Route]:
    """Endpoints for the admin service (loopback only, like everything here)."""

    @handle_errors
    async def stats(request: Request) -> Response:
        out = gw.stats.summary(_window(request), slow_above=_slow_above(request))
        out["zones"] = gw.router.zones()
        return JSONResponse(out)

    async def reload(request: Request) -> Response:
        # Synchronous, so when the admin API answers a cap change the gateway already has it.
        try:
            await gw.directory.reload()
        except psycopg.Error:
            gw.directory.reload_soon()
            return JSONResponse({"reloaded": False}, 503)
        return JSONResponse({"reloaded": True})

    @handle_errors
    async def canary(request: Request) -> Response:
        body = await read_json(request)
        weight, analysis = body.get("weight", 0.0), body.get("analysis")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ApiError(400, "BAD_REQUEST", "weight must be a number in [0, 1]")
        if analysis is not None and not isinstance(analysis, bool):
            raise ApiError(400, "BAD_REQUEST", "analysis must be a boolean")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ApiError(400, "BAD_REQUEST", "seed must be an integer")
        if analysis is not None:  # absent: a step of a running analysis keeps its counts
            gw.versions.arm(analysis)
        if seed is not None:  # a deployment: its routing draws start anew from the seed
            gw.router.rng = random.Random(derive_seed(seed, "release.canary.routing"))
        gw.router.canary_weight = float(weight)
        return JSONResponse({"weight": gw.router.canary_weight, "analysis": gw.versions.armed})

    async def canary_window(request: Request) -> Response:
        return JSONResponse(gw.versions.take())

    @handle_errors
    async def settings(request: Request) -> Response:
        if request.method == "POST":
            gw.apply(await read_json(request))
        return JSONResponse(gw.settings())

    @handle_errors
    async def region(request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request)
            phase, ttl, seed = body.get("phase"), body.get("ttl_seconds", 0.0), body.get("seed", 0)
            if phase not in ("up", "down", "shifting"):
                raise ApiError(400, "BAD_REQUEST", "phase must be up, down or shifting")
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 <= ttl <= 3600:
                raise ApiError(400, "BAD_REQUEST", "ttl_seconds must be a number in [0, 3600]")
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ApiError(400, "BAD_REQUEST", "seed must be an integer")
            return JSONResponse(gw.region.set(phase, body.get("blackhole") is True,
                                              float(ttl), seed))
        return JSONResponse(gw.region.json())

    async def zones(request: Request) -> Response:
        canary = gw.router.canary
        return JSONResponse({"zones": gw.router.zones(),
                             "canary": "healthy" if canary and canary.healthy else "unhealthy",
                             "canary_weight": gw.router.canary_weight,
                             "colour": gw.router.colour})

    return [
        Route("/internal/stats", stats), Route("/internal/zones", zones),
        Route("/internal/tasks", tasks_endpoint),
        Route("/internal/reload", reload, methods=["POST"]),
        Route("/internal/canary", canary, methods=["POST"]),
        Route("/internal/canary/window", canary_window, methods=["POST"]),
        Route("/internal/config", settings, methods=["GET", "POST"]),
        Route("/internal/region", region, methods=["GET", "POST"]),
        cutover_route(gw.cut_over, gw.reset_cutover, gw.cutover.json),
    ]


def build_app(config: GatewayConfig) -> Starlette:
    gw = build_gateway(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.open()
        tasks = [asyncio.create_task(c) for c in (
            gw.router.check_forever(gw.http), gw.directory.reload_forever(),
            gw.directory.flush_forever())]
        yield
        for task in tasks:
            task.cancel()
        await gw.http.aclose()
        if gw.session:
            await gw.session.close()

    async def query(request: Request) -> Response:
        started, info = time.perf_counter(), QueryContext()
        try:
            response = await _handle(gw, request, info)
        except ApiError as err:
            info.detail = err.code
            response = error_response(err)
        gw.record(info, response.status_code, time.perf_counter() - started)
        return response

    async def ready(request: Request) -> Response:
        # Not ready until the key table has loaded once: `up` waits on this, so the first
        # query after `up` can never meet an empty key table and a spurious 401.
        if not gw.directory.loaded:
            return JSONResponse({"status": "loading keys"}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        gw.router.export_gauges()
        return await metrics_endpoint(request)

    return Starlette(exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan, routes=[
        Route("/v1/query", query, methods=["POST"]), *_internal_routes(gw),
        Route("/health", ready), Route("/metrics", metrics),
    ])
