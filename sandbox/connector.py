"""A connector worker (one per AZ): fetches records from SaaS providers for the engines.

It pages through the provider's API, honours Retry-After within a bounded budget (so a flood
turns into fast 429s instead of piling up waiting requests), and takes OAuth tokens from the
token store. On a 401 it re-reads the store once (the bulk refresh may have replaced the
token) and otherwise reports PROVIDER_UNAUTHORIZED: refreshing a revoked grant is the
control plane's job (SOP-103), not every worker's. When a tenant holds a set of tokens (a
paced bulk refresh, ``sandbox.admin.token_refresh``), each provider call uses one drawn
uniformly from a stream seeded like the simulator's (the run seed, the zone, the
provider), and the re-read after a 401 reads the same one of the set: the simulator draws
a call's 401 once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.breaker import Breaker
from sandbox.cache import hot_path_redis
from sandbox.control_plane import ControlPlaneTier
from sandbox.deadline import deadline_from, expired
from sandbox.errors import ApiError
from sandbox.fetchstats import FetchStats
from sandbox.metrics import LATENCY, PROVIDER_REQUESTS, REQUESTS, metrics_endpoint
from sandbox.sections import connector_section
from sandbox.service import EXCEPTION_HANDLERS, handle_errors, health, read_json
from sandbox.slots import Slots
from sandbox.standin import derive_seed
from sandbox.tasks import tasks_endpoint
from sandbox.tokens import TokenCipher, fetch_token, load_credential, load_token, store_token

__all__ = ["Connector", "ConnectorConfig", "build_app"]

PAGE_SIZE = 200


@dataclass(frozen=True)
class ConnectorConfig:
    zone: str
    providers: dict[str, str]  # name -> base url
    client_secrets: dict[str, str]  # tenant -> OAuth client secret
    redis_port: int
    redis_password: str
    service_token: str
    token_key: str  # seals tokens in Redis (sandbox.tokens); lives only in the 0600 config
    max_retry_wait: float = 1.0  # total seconds a request may spend obeying Retry-After
    timeout: float = 8.0
    #: The ``connector`` section of ``sandbox.standin`` (worker slots, retries); None: today's.
    settings: dict[str, Any] | None = None


class Connector:
    """Fetches rows from providers on behalf of engines in the same AZ."""

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.scope = f"{config.zone}.connector"
        self.store = hot_path_redis(config.redis_port, config.redis_password)
        self.cipher = TokenCipher(config.token_key)
        # Tokens this connector fetched itself, used while the shared store (Redis) is down.
        self._local: dict[tuple[str, str], str] = {}
        self.breaker = Breaker("redis")
        self.http = httpx.AsyncClient(timeout=config.timeout)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.slots = Slots(f"connector-{config.zone}")
        self.stats = FetchStats()  # fetches, calls and keys per second (GET /_control/stats)
        self.settings: dict[str, Any] = {}
        self.control: ControlPlaneTier | None = None  # the scenario's control plane
        self._draws: dict[str, random.Random] = {}  # provider -> which token a call uses
        self.apply(config.settings or {
            "workers": None, "queue_limit": None, "timeout_seconds": config.timeout,
            "retries": {"max_attempts": None, "honour_retry_after": True,
                        "max_wait_seconds": 60.0,
                        "total_wait_seconds": config.max_retry_wait},
            "control_plane": None})

    def apply(self, body: Any) -> dict[str, Any]:
        """Take a new ``connector`` section (400 on a bad one); requests in flight keep
        the slot they hold."""
        seed = self.settings.get("seed")
        self.settings = connector_section(body)
        if self.settings["seed"] != seed:
            self._draws.clear()
        self.slots.resize(self.settings["workers"], self.settings["queue_limit"])
        control = self.settings["control_plane"]
        if control != (None if self.control is None else self.control.section):
            self.control = None if control is None else ControlPlaneTier(self.config.zone,
                                                                         control)
        return self.settings

    async def close(self) -> None:
        await self.http.aclose()
        await self.store.aclose()

    def _draw(self, provider: str) -> random.Random:
        """The provider's stream of token draws (the simulator's ``provider.<name>.auth``,
        one per zone: each connector draws for its own calls)."""
        if provider not in self._draws:
            seed = derive_seed(self.settings["seed"], self.scope, f"provider.{provider}.auth")
            self._draws[provider] = random.Random(seed)
        return self._draws[provider]

    async def stored_token(self, provider: str, tenant: str, index: int | None = None,
                           draw: bool = False) -> tuple[str | None, int | None]:
        """The shared store's token for a call and its index in the tenant's set of tokens:
        drawn with ``draw``, else that of ``index`` (None: the single token). With Redis
        down, the one this connector fetched."""
        if self.breaker.closed:
            started = time.monotonic()
            try:
                if draw:
                    found = await load_credential(self.store, self.cipher, provider, tenant,
                                                  self._draw(provider).randrange)
                else:
                    found = (await load_token(self.store, self.cipher, provider, tenant,
                                              index), index)
                self.breaker.success()
                return found
            except RedisError:
                self.breaker.failure(started)
        return self._local.get((provider, tenant)), None

    async def token(self, provider: str, tenant: str, index: int | None = None,
                    draw: bool = True) -> tuple[str, int | None]:
        """A call's token and its index in the tenant's set (see :meth:`stored_token`);
        fetched from the provider when the store has none."""
        token, index = await self.stored_token(provider, tenant, index, draw)
        if token is not None:
            return token, index
        store_up = not self.breaker.last_failed and self.breaker.closed
        # One refresh per (provider, tenant) at a time, so a cold start does not stampede.
        async with self._locks.setdefault((provider, tenant), asyncio.Lock()):
            # Re-read (another request may have refreshed it), unless the store just failed.
            token = (await self.stored_token(provider, tenant, index))[0] if store_up else None
            if token is None:
                token, ttl = await fetch_token(
                    self.http, self.config.providers[provider], provider, tenant,
                    self.config.client_secrets.get(tenant, ""))
                self._local[(provider, tenant)] = token
                if self.breaker.closed:
                    with contextlib.suppress(RedisError):
                        await store_token(self.store, self.cipher, provider, tenant, token, ttl)
            return token, index

    async def fetch(self, tenant: str, provider: str, obj: str, where: list[Any] | None,
                    limit: int, deadline: float | None = None) -> list[dict[str, Any]]:
        """All pages of one fetch, holding one worker slot throughout (Retry-After waits
        included, as the simulator's connector worker holds its slot). Past ``deadline``
        (the client gave up, :mod:`sandbox.deadline`) a 429 is not waited out."""
        self.stats.fetch(f"{tenant}|{provider}|{obj}|{where}|{limit}")
        if self.control is not None:  # the policy check and token lookup come first
            await self.control.pass_through()
        async with self.slots.hold():
            return await self._fetch_pages(tenant, provider, obj, where, limit, deadline)

    async def _fetch_pages(self, tenant: str, provider: str, obj: str, where: list[Any] | None,
                           limit: int, deadline: float | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"page_size": min(limit, PAGE_SIZE)}
        if where:
            params[str(where[0])] = str(where[1])
        rows: list[dict[str, Any]] = []
        cursor: int | None = 0
        while cursor is not None and len(rows) < limit:
            page = await self._get_page(tenant, provider, obj, {**params, "cursor": cursor},
                                        deadline)
            rows += page["records"]
            cursor = page.get("next_cursor")
        return rows[:limit]

    async def _get_page(self, tenant: str, provider: str, obj: str, params: dict[str, Any],
                        deadline: float | None = None) -> dict[str, Any]:
        url = f"{self.config.providers[provider]}/v1/{obj}"
        waited, retried_auth, calls = 0.0, False, 0
        token, index = await self.token(provider, tenant)
        while True:
            resp = await self._call(url, params, token, provider, tenant)
            calls += 1
            if resp.status_code == 200:
                try:
                    page: dict[str, Any] = resp.json()
                except ValueError:
                    raise _provider_error(provider, 200) from None
                return page
            if resp.status_code == 401 and not retried_auth:
                retried_auth = True
                # Again only if the same token of the set changed: no second draw.
                if (await self.stored_token(provider, tenant, index))[0] != token:
                    token, index = await self.token(provider, tenant, index, draw=False)
                    continue
                raise ApiError(502, "PROVIDER_UNAUTHORIZED",
                               f"{provider} rejected the tenant's access token")
            if resp.status_code == 429:
                wait = None if expired(deadline) else self._retry_wait(_retry_after(resp),
                                                                      waited, calls)
                if wait is None:
                    raise ApiError(429, "RATE_LIMIT_EXHAUSTED", f"{provider} rate limit "
                                   "exhausted", retry_after=_retry_after(resp))
                waited += wait
                await asyncio.sleep(wait)
                token, index = await self.token(provider, tenant)  # a new call, a new draw
                continue
            raise _provider_error(provider, resp.status_code)

    def _retry_wait(self, asked: float, waited: float, calls: int) -> float | None:
        """How long to wait before calling again after a 429, or None to give up: the
        scenario's rule (at most ``max_attempts`` calls, each wait capped at ``max_wait``)
        or, without a scenario, waits adding up to at most ``total_wait_seconds``."""
        rule = self.settings["retries"]
        if not rule["honour_retry_after"]:
            return None
        if rule["max_attempts"] is not None and calls >= rule["max_attempts"]:
            return None
        wait = min(asked, rule["max_wait_seconds"])
        total = rule["total_wait_seconds"]
        if total is not None and waited + wait > total:
            return None
        return float(wait)

    async def _call(self, url: str, params: dict[str, Any], token: str,
                    provider: str, tenant: str) -> httpx.Response:
        try:
            resp = await self.http.get(url, params=params,
                                       headers={"Authorization": f"Bearer {token}"},
                                       timeout=self.settings["timeout_seconds"])
        except httpx.TimeoutException:
            self.stats.call(tenant, None)
            raise ApiError(504, "UPSTREAM_TIMEOUT", f"{provider} did not answer in time") from None
        except httpx.HTTPError:
            raise ApiError(502, "PROVIDER_ERROR", f"{provider} unreachable") from None
        self.stats.call(tenant, resp.status_code)
        PROVIDER_REQUESTS.labels(self.scope, provider, str(resp.status_code)).inc()
        return resp


def _retry_after(resp: httpx.Response) -> float:
    try:  # the mock also puts the exact wait in the body; the header is whole seconds
        return float(resp.json()["error"]["retry_after"])
    except (ValueError, KeyError, TypeError):
        header = resp.headers.get("retry-after", "1")
        return float(header) if header.replace(".", "", 1).isdigit() else 1.0


def _provider_error(provider: str, status: int) -> ApiError:
    if status == 401:
        return ApiError(502, "PROVIDER_UNAUTHORIZED", f"{provider} rejected the access token")
    if status == 200:
        return ApiError(502, "PROVIDER_ERROR", f"{provider} sent a malformed page")
    return ApiError(502, "PROVIDER_ERROR", f"{provider} answered {status}")


def _fetch_args(body: dict[str, Any], providers: dict[str, str]
                ) -> tuple[str, str, str, list[Any] | None, int]:
    try:
        tenant, provider, obj = str(body["tenant"]), str(body["provider"]), str(body["object"])
        limit = int(body["limit"])
    except (KeyError, ValueError, TypeError):
        raise ApiError(400, "BAD_REQUEST", "need tenant, provider, object, limit") from None
    if provider not in providers:
        raise ApiError(404, "NOT_FOUND", f"unknown provider {provider}")
    return tenant, provider, obj, body.get("where"), limit


def build_app(config: ConnectorConfig) -> Starlette:
    connector = Connector(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await connector.close()

    async def fetch(request: Request) -> Response:
        started = time.perf_counter()
        body: dict[str, Any] = {}
        response = await _fetch(request, body)
        labels = (str(body.get("tenant", "")), str(body.get("provider", "")))
        REQUESTS.labels(connector.scope, str(response.status_code), *labels).inc()
        LATENCY.labels(connector.scope, labels[1]).observe(time.perf_counter() - started)
        return response

    @handle_errors
    async def _fetch(request: Request, body: dict[str, Any]) -> Response:
        body.update(await read_json(request))
        args = _fetch_args(body, config.providers)
        rows = await connector.fetch(*args, deadline=deadline_from(request.headers))
        return JSONResponse({"rows": rows})

    @handle_errors
    async def settings(request: Request) -> Response:
        if request.method == "POST":
            connector.apply(await read_json(request))
        return JSONResponse({**connector.settings, "slots": connector.slots.snapshot()})

    async def stats(request: Request) -> Response:
        try:
            window = float(request.query_params.get("window", "30"))
        except ValueError:
            window = 30.0
        window = min(3600.0, max(1.0, window)) if window == window else 30.0
        control = connector.control
        return JSONResponse({**connector.stats.window(window),
                             "slots": connector.slots.snapshot(),
                             "control_plane_slots": None if control is None
                             else control.slots.snapshot()})

    return Starlette(exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan, routes=[
        Route("/fetch", fetch, methods=["POST"]),
        Route("/_control/stats", stats), Route("/_control/tasks", tasks_endpoint),
        Route("/_control/config", settings, methods=["GET", "POST"]),
        Route("/health", health), Route("/metrics", metrics_endpoint),
    ])
