"""Admin API endpoints: the runbooks' control-plane actions (SOP-101/102/103, canary, DR)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import metadata
from sandbox.admin.canary import deploy_canary, rollback_canary
from sandbox.admin.plane import ControlPlane
from sandbox.admin.token_refresh import cancel_paced, paced_status, start_paced
from sandbox.cache import CONFIG_KEY, CacheOptions, stale_copy, tenant_pattern
from sandbox.errors import ApiError
from sandbox.service import handle_errors, read_json
from sandbox.tokens import refresh_token

__all__ = ["admin_routes", "deploy_canary", "number", "rollback_canary"]

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


MAX_CAP = 100_000  # concurrent queries per user; PostgreSQL's integer column holds it


def number(body: dict[str, Any], key: str, low: float, high: float, default: Any) -> Any:
    value = body.get(key, default)
    if value is default and default is not None:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, "BAD_REQUEST", f"{key} must be a number in [{low}, {high}]")
    return value


def _tenant(plane: ControlPlane, value: Any) -> str:
    if not isinstance(value, str) or value not in plane.state["tenants"]:
        raise ApiError(404, "NOT_FOUND", "unknown tenant")
    return value


def _write_cap(ports: list[int], tenant: str, user: str, cap: int | None) -> None:
    hosts = ",".join("127.0.0.1" for _ in ports)
    info = (f"host={hosts} port={','.join(map(str, ports))} user=postgres dbname=postgres "
            "connect_timeout=2 target_session_attrs=read-write")
    with psycopg.connect(info, autocommit=True) as conn:
        if cap is None:
            conn.execute("DELETE FROM user_caps WHERE tenant=%s AND user_name=%s", (tenant, user))
        else:
            conn.execute(
                "INSERT INTO user_caps VALUES (%s, %s, %s) ON CONFLICT (tenant, user_name)"
                " DO UPDATE SET max_concurrency = EXCLUDED.max_concurrency", (tenant, user, cap))


def _read_caps(port: int) -> list[dict[str, Any]]:
    with psycopg.connect(metadata.conninfo(port), autocommit=True) as conn:
        rows = conn.execute("SELECT tenant, user_name, max_concurrency FROM user_caps"
                            " ORDER BY 1, 2").fetchall()
    return [{"tenant": t, "user": u, "max_concurrency": c} for t, u, c in rows]


async def set_cap(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    tenant, user = _tenant(plane, body.get("tenant")), body.get("user")
    # "*" is the tenant's cap on every user (the directory's fallback, a scenario's user_cap)
    if not isinstance(user, str) or not (user == "*" or _USER.match(user)):
        raise ApiError(400, "BAD_REQUEST", "user must be a user name or *")
    if "max_concurrency" not in body:
        raise ApiError(400, "BAD_REQUEST", "max_concurrency is required (null removes the cap)")
    cap = body["max_concurrency"]
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                            or not 0 <= cap <= MAX_CAP):
        raise ApiError(400, "BAD_REQUEST",
                       f"max_concurrency must be an integer in [0, {MAX_CAP}] or null")
    try:
        await asyncio.to_thread(_write_cap, [n.port for n in plane.nodes], tenant, user, cap)
    except psycopg.Error:
        raise ApiError(503, "METADATA_UNAVAILABLE", "no writable metadata primary") from None
    await plane.post(f"{plane.gateway_internal}/internal/reload")
    return {"tenant": tenant, "user": user, "max_concurrency": cap}


async def invalidate(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    """Invalidate the cached results of a tenant (or all). With soft caching on (SOP-102)
    an entry is kept as a stale copy (its ``fresh_until`` moved to now), served while one
    refresh runs, as the simulator's soft purge does; with it off, entries are deleted."""
    tenant = _tenant(plane, body["tenant"]) if body.get("tenant") is not None else None
    soft = CacheOptions.from_hash(await plane.store.hgetall(CONFIG_KEY)).soft_cache
    purge = _mark_stale if soft else _delete
    done, batch = 0, []
    async for key in plane.store.scan_iter(match=tenant_pattern(tenant), count=500):
        batch.append(key)
        if len(batch) >= 500:
            done += await purge(plane, batch)
            batch = []
    if batch:
        done += await purge(plane, batch)
    return {"stale" if soft else "deleted": done, "tenant": tenant}


async def _delete(plane: ControlPlane, keys: list[Any]) -> int:
    return int(await plane.store.delete(*keys))


async def _mark_stale(plane: ControlPlane, keys: list[Any]) -> int:
    """Entries among ``keys`` made stale now, their Redis TTL (the stale grace) kept;
    other keys under the prefix (a fill's claim) are left alone."""
    now, marked = time.time(), 0
    async with plane.store.pipeline(transaction=False) as pipe:
        for key, raw in zip(keys, await plane.store.mget(keys)):
            stale = stale_copy(raw, now)
            if stale is not None:
                pipe.set(key, stale, keepttl=True, xx=True)
                marked += 1
        await pipe.execute()
    return marked


async def cache_options(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    unknown = set(body) - {"soft_cache", "coalesce", "ttl_seconds", "enabled"}
    if unknown:
        raise ApiError(400, "BAD_REQUEST", f"unknown fields {sorted(unknown)}")
    updates: dict[Any, Any] = {}
    for key in ("soft_cache", "coalesce", "enabled"):
        if key in body:
            if not isinstance(body[key], bool):
                raise ApiError(400, "BAD_REQUEST", f"{key} must be a boolean")
            updates[key] = "1" if body[key] else "0"
    if "ttl_seconds" in body:
        updates["ttl_seconds"] = str(number(body, "ttl_seconds", 0.1, 86_400.0, None))
    if updates:
        await plane.store.hset(CONFIG_KEY, mapping=updates)
        plane.save_options(updates)  # re-applied if Redis restarts (sandbox.admin.persist)
    raw = await plane.store.hgetall(CONFIG_KEY)
    options = CacheOptions.from_hash(raw)
    return {"soft_cache": options.soft_cache, "coalesce": options.coalesce,
            "ttl_seconds": options.ttl, "enabled": options.enabled}


async def refresh_tokens(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    provider = body.get("provider")
    if not isinstance(provider, str) or provider not in plane.state["providers"]:
        raise ApiError(404, "NOT_FOUND", "unknown provider")
    if body.get("rate") is not None:  # the runbook's pace (sandbox.admin.token_refresh)
        return start_paced(plane, provider, body)
    if body.get("tokens_per_tenant") is not None:
        raise ApiError(400, "BAD_REQUEST", "tokens_per_tenant needs a rate")
    cancel_paced(plane, provider)
    started = time.perf_counter()
    secrets, url = plane.state["internal"]["oauth_clients"], plane.state["providers"][provider]
    await asyncio.gather(*(
        refresh_token(plane.store, plane.cipher, plane.http, url, provider, tenant,
                      secrets[tenant]) for tenant in plane.state["tenants"]))
    plane.faults.tokens_expired.pop(provider, None)
    plane.leases.end(f"tokens:{provider}")
    return {"provider": provider, "refreshed": len(plane.state["tenants"]),
            "duration_seconds": round(time.perf_counter() - started, 4)}


async def sequenced_writes(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    n = body.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
        raise ApiError(400, "BAD_REQUEST", "n must be an integer in [1, 10000]")
    return await asyncio.to_thread(metadata.write_sequenced, plane.primary.port, n)


async def visible_writes(plane: ControlPlane) -> dict[str, Any]:
    try:
        top = await asyncio.to_thread(metadata.max_sequence, plane.primary.port)
    except psycopg.Error:
        raise ApiError(503, "METADATA_UNAVAILABLE", "the metadata primary is down") from None
    return {"max_visible": top, "primary": plane.primary.name}


async def _status(plane: ControlPlane) -> dict[str, Any]:
    return paced_status(plane)


async def _snapshots(plane: ControlPlane) -> dict[str, Any]:
    return plane.snapshots.json()


def admin_routes(plane: ControlPlane) -> list[Route]:
    def post(fn: Any) -> Any:
        @handle_errors
        async def endpoint(request: Request) -> Response:
            return JSONResponse(await fn(plane, await read_json(request)))
        return endpoint

    def get(fn: Any) -> Any:
        @handle_errors
        async def endpoint(request: Request) -> Response:
            return JSONResponse(await fn())
        return endpoint

    @handle_errors
    async def canary(request: Request) -> Response:
        if request.method == "DELETE":
            return JSONResponse(await rollback_canary(plane))
        if request.method == "GET":
            analysis = None if plane.analysis is None else plane.analysis.json()
            return JSONResponse({**(plane.canary or {"weight": 0.0}), "analysis": analysis})
        return JSONResponse(await deploy_canary(plane, await read_json(request)))

    async def lag(request: Request) -> Response:
        """The replica's lag samples and the reading at the last loss (sandbox.admin.lag)."""
        if request.method == "DELETE":
            plane.lag.clear()
        return JSONResponse(plane.lag.json())

    async def caps_list() -> dict[str, Any]:
        try:
            return {"caps": await asyncio.to_thread(_read_caps, plane.primary.port)}
        except psycopg.Error:
            return {"caps": await asyncio.to_thread(_read_caps, plane.replica.port)}

    async def status() -> dict[str, Any]:
        infos = await plane.supervisor("getAllProcessInfo")
        return {"processes": {f"{i['group']}:{i['name']}": i["statename"] for i in infos}}

    return [
        Route("/admin/caps", post(set_cap), methods=["POST"]),
        Route("/admin/caps", get(caps_list), methods=["GET"]),
        Route("/admin/cache/invalidate", post(invalidate), methods=["POST"]),
        Route("/admin/cache/options", post(cache_options), methods=["POST"]),
        Route("/admin/tokens/refresh", post(refresh_tokens), methods=["POST"]),
        Route("/admin/tokens/refresh", get(lambda: _status(plane)), methods=["GET"]),
        Route("/admin/canary", canary, methods=["GET", "POST", "DELETE"]),
        Route("/admin/metadata/status", get(plane.metadata_status)),
        Route("/admin/metadata/promote", get(plane.promote), methods=["POST"]),
        Route("/admin/metadata/rebuild", get(plane.rebuild), methods=["POST"]),
        Route("/admin/metadata/writes", post(sequenced_writes), methods=["POST"]),
        Route("/admin/metadata/writes", get(lambda: visible_writes(plane)), methods=["GET"]),
        Route("/admin/metadata/lag", lag, methods=["GET", "DELETE"]),
        Route("/admin/metadata/snapshots", get(lambda: _snapshots(plane))),
        Route("/admin/status", get(status)),
    ]
