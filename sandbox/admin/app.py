"""The admin service: admin API, fault API, the stats API and aggregated metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin.actions import admin_routes
from sandbox.admin.faults import fault_routes
from sandbox.admin.lag import sample_forever
from sandbox.admin.leases import AuditLog
from sandbox.admin.persist import keep_redis_state
from sandbox.admin.plane import ControlPlane
from sandbox.admin.release import release_routes
from sandbox.admin.scenario import connector_stats, scenario_routes
from sandbox.auth import TokenGuard
from sandbox.metrics import METADATA_UP, REPLICA_LAG, merge_expositions
from sandbox.service import EXCEPTION_HANDLERS, health

__all__ = ["build_app"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def _scrape(http: httpx.AsyncClient, url: str) -> str | None:
    try:
        resp = await http.get(f"{url}/metrics", timeout=1.0)
    except httpx.HTTPError:
        return None  # a lost AZ simply drops out of the aggregate
    return resp.text if resp.status_code == 200 else None


async def _metadata_gauges(plane: ControlPlane) -> None:
    status = await plane.metadata_status()
    METADATA_UP.clear()  # a node's role changes on promotion: drop the old series
    for key in ("primary", "replica"):
        node = status[key]
        METADATA_UP.labels("admin", node["name"], node["zone"], node["role"]).set(
            0 if node["role"] == "down" else 1)
    lag = status["replica_lag_seconds"]
    REPLICA_LAG.labels("admin").set(float("nan") if lag is None else lag)


def build_app(root: Path, state: dict[str, Any]) -> Audited:
    plane = ControlPlane(root, state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        keeper = asyncio.create_task(keep_redis_state(plane))
        sampler = asyncio.create_task(sample_forever(plane.lag, lambda: plane.primary.port))
        # A restarted admin resumes the applied scenario's snapshot schedule (admin.snapshots).
        await plane.snapshots.resume(plane.layout.root, lambda: plane.primary.port)
        yield
        keeper.cancel()
        sampler.cancel()
        await plane.close()

    async def stats(request: Request) -> Response:
        try:
            resp = await plane.http.get(f"{plane.gateway_internal}/internal/stats",
                                        params=dict(request.query_params))
        except httpx.HTTPError:
            return JSONResponse({"error": {"code": "UPSTREAM_ERROR",
                                           "message": "gateway unreachable"}}, 502)
        if resp.status_code != 200:
            return Response(resp.content, resp.status_code, media_type="application/json")
        data = resp.json()  # the gateway checked the window; the connectors add theirs
        data.update(await connector_stats(plane, data["window_seconds"]))
        return JSONResponse(data)

    async def metrics(request: Request) -> Response:
        services = {k: v for k, v in state["services"].items() if k != "admin"}
        texts = await asyncio.gather(*(_scrape(plane.http, u) for u in services.values()))
        found = {name: t for name, t in zip(services, texts) if t is not None}
        await _metadata_gauges(plane)
        found["admin"] = generate_latest().decode()
        return Response(merge_expositions(found), media_type=CONTENT_TYPE)

    app = Starlette(exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan, routes=[
        Route("/v1/stats", stats), Route("/metrics", metrics), Route("/health", health),
        *admin_routes(plane), *fault_routes(plane), *scenario_routes(plane),
        *release_routes(plane),
    ])
    return Audited(TokenGuard(app, _privileged, bearer=state["admin_token"]), plane.audit)


class Audited:
    """ASGI middleware: one audit line per admin or fault call, refused ones included."""

    def __init__(self, app: Any, audit: AuditLog) -> None:
        self.app, self.audit = app, audit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _privileged(scope["path"]):
            return await self.app(scope, receive, send)
        status: list[int] = []

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            headers = {k.decode("latin-1"): v.decode("latin-1")
                       for k, v in scope.get("headers", ())}
            peer = scope.get("client") or ("?", 0)
            self.audit.write(who={"peer": f"{peer[0]}:{peer[1]}",
                                  "user_agent": headers.get("user-agent", "")[:200],
                                  "actor": headers.get("x-omnisql-actor", "")[:200]},
                             method=scope["method"], path=scope["path"][:300],
                             status=status[0] if status else None)


def _privileged(path: str) -> bool:
    """Admin and fault routes need the admin token; stats, metrics and health stay open."""
    return path.startswith(("/admin/", "/faults"))
