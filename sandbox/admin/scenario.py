"""The stand-in from a scenario: ``POST /admin/scenario`` and ``GET /admin/config``.

``POST /admin/scenario`` takes ``{"name": label, "scenario": the effective mapping}`` (what
``labcore.scenario_file.read_scenario`` returns as ``data``, after the profile and ``--set``),
validates it with the one schema, maps it to the stand-in's configuration
(:mod:`sandbox.standin`), writes that to ``DIR/standin.json`` (restarted services read it),
pushes each section to the running services, and answers the configuration with the fields
it cannot honour. ``GET /admin/config`` reads the configuration back *from the services*
(gateway, every engine and connector, the mock providers, the cache options in Redis, the
caps in PostgreSQL), so it shows what runs, not what was asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from labcore.scenario import Scenario
from sandbox import metadata
from sandbox.admin.plane import ControlPlane
from sandbox.admin.release import serving_engines
from sandbox.cache import CONFIG_KEY, CacheOptions
from sandbox.errors import ApiError
from sandbox.fetchstats import merge_windows
from sandbox.service import handle_errors, read_json
from sandbox.standin import STANDIN_FILE, config_from_scenario, default_config, not_honoured
from sandbox.state import read_json_file, write_state

__all__ = ["apply_config", "applied", "connector_stats", "live_config", "scenario_routes"]

MAX_SCENARIO_BODY = 256 * 1024  # a scenario with its profiles; far above any shipped one


def applied(plane: ControlPlane) -> dict[str, Any]:
    """The last applied configuration (``DIR/standin.json``), else the defaults."""
    saved = read_json_file(plane.layout.root / STANDIN_FILE)
    if saved is None:
        return {**default_config(), "not_honoured": [], "reasons": {}}
    return saved


def _scenario(body: dict[str, Any]) -> tuple[Scenario, str]:
    unknown = set(body) - {"name", "scenario"}
    if unknown:
        raise ApiError(400, "BAD_REQUEST", f"unknown fields {sorted(unknown)}")
    name, data = body.get("name", ""), body.get("scenario")
    if not isinstance(name, str) or len(name) > 300:
        raise ApiError(400, "BAD_REQUEST", "name must be a string of at most 300 characters")
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_REQUEST", "scenario must be the scenario's mapping")
    try:
        return Scenario.model_validate(data), name
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
        raise ApiError(400, "BAD_SCENARIO", "; ".join(problems)) from None
    except (ValueError, TypeError, KeyError) as exc:  # a validator meeting an odd shape
        raise ApiError(400, "BAD_SCENARIO", f"not a valid scenario ({type(exc).__name__})"
                       ) from None


def _service_names(plane: ControlPlane, kind: str) -> list[str]:
    return [name for name in plane.state["services"] if name.startswith(f"{kind}-")]


async def _push(plane: ControlPlane, url: str, body: Any) -> bool:
    """False when the service is not running (a lost zone: it reads the file at restart)."""
    try:
        await plane.post(url, body)
    except ApiError as err:
        if err.code == "UPSTREAM_ERROR" and err.status == 502:
            return False
        raise
    return True


def _targets(plane: ControlPlane, config: dict[str, Any]) -> list[tuple[str, str, Any]]:
    out = [("gateway", f"{plane.gateway_internal}/internal/config", config["gateway"])]
    for kind in ("engine", "connector"):
        out += [(name, f"{plane.service_url(name)}/_control/config", config[kind])
                for name in _service_names(plane, kind)]
    out += [(f"mock-{name}", f"{url}/_control/config", config["providers"][name])
            for name, url in plane.state["providers"].items()]
    return out


async def _set_cache(plane: ControlPlane, cache: dict[str, Any]) -> None:
    flags = {k: "1" if cache[k] else "0" for k in ("enabled", "soft_cache", "coalesce")}
    options: dict[Any, Any] = {**flags, "ttl_seconds": str(float(cache["ttl_seconds"]))}
    await plane.store.hset(CONFIG_KEY, mapping=options)
    plane.save_options(options)  # re-applied if Redis restarts (sandbox.admin.persist)


def _replace_caps(ports: list[int], caps: list[dict[str, Any]]) -> None:
    hosts = ",".join("127.0.0.1" for _ in ports)
    info = (f"host={hosts} port={','.join(map(str, ports))} user=postgres dbname=postgres "
            "connect_timeout=2 target_session_attrs=read-write")
    with psycopg.connect(info) as conn:  # one transaction: never half the caps
        conn.execute("DELETE FROM user_caps")
        for cap in caps:
            conn.execute("INSERT INTO user_caps VALUES (%s, %s, %s)",
                         (cap["tenant"], cap["user"], cap["max_concurrency"]))


async def apply_config(plane: ControlPlane, config: dict[str, Any]) -> list[str]:
    """Write, then push, every section; the names of services that were not running."""
    write_state(plane.layout.root / STANDIN_FILE, config)
    await _set_cache(plane, config["cache"])  # first: engines re-read it when pushed to
    missed = []
    for name, url, body in _targets(plane, config):
        if not await _push(plane, url, body):
            missed.append(name)
    try:
        await asyncio.to_thread(_replace_caps, [n.port for n in plane.nodes], config["user_caps"])
    except psycopg.Error:
        raise ApiError(503, "METADATA_UNAVAILABLE", "no writable metadata primary") from None
    await plane.post(f"{plane.gateway_internal}/internal/reload")
    await plane.snapshots.apply(config.get("failover"), lambda: plane.primary.port)
    return missed


async def apply_scenario(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    scenario, label = _scenario(body)
    gaps = not_honoured(scenario, tuple(plane.state["tenants"]))
    config = {**config_from_scenario(scenario, label), "not_honoured": list(gaps),
              "reasons": gaps}
    tenants = plane.state["tenants"]  # another tenant's cap is listed in not_honoured
    config["user_caps"] = [c for c in config["user_caps"] if c["tenant"] in tenants]
    missed = await apply_config(plane, config)
    plane.audit.write(who="admin", method="SCENARIO", path=label or scenario.name,
                      status=f"applied; not honoured: {list(gaps)}")
    return {**config, "not_running": missed}


async def _get(plane: ControlPlane, url: str) -> Any:
    try:
        resp = await plane.http.get(url, timeout=2.0)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    data = resp.json()
    if isinstance(data, dict):
        data.pop("slots", None)  # live counters, not configuration (see /v1/stats)
    return data


def _read_caps(port: int) -> list[dict[str, Any]]:
    with psycopg.connect(metadata.conninfo(port), autocommit=True) as conn:
        rows = conn.execute("SELECT tenant, user_name, max_concurrency FROM user_caps"
                            " ORDER BY 1, 2").fetchall()
    return [{"tenant": t, "user": u, "max_concurrency": c} for t, u, c in rows]


async def _caps(plane: ControlPlane) -> list[dict[str, Any]] | None:
    for node in (plane.primary, plane.replica):
        try:
            return await asyncio.to_thread(_read_caps, node.port)
        except psycopg.Error:
            continue
    return None


async def live_config(plane: ControlPlane) -> dict[str, Any]:
    """The configuration as the services report it; a stopped one reads ``null``."""
    saved = applied(plane)
    targets = _targets(plane, saved)
    answers = await asyncio.gather(*(_get(plane, url) for _, url, _ in targets))
    found = dict(zip((name for name, _, _ in targets), answers))
    options = CacheOptions.from_hash(await plane.store.hgetall(CONFIG_KEY))
    return {
        "scenario": saved.get("scenario"), "not_honoured": saved.get("not_honoured", []),
        "reasons": saved.get("reasons", {}), "gateway": found.pop("gateway"),
        "engine": {k: v for k, v in found.items() if k.startswith("engine-")},
        "connector": {k: v for k, v in found.items() if k.startswith("connector-")},
        "providers": {k.removeprefix("mock-"): v for k, v in found.items()
                      if k.startswith("mock-")},
        "cache": {"enabled": options.enabled, "ttl_seconds": options.ttl,
                  "soft_cache": options.soft_cache, "coalesce": options.coalesce},
        "user_caps": await _caps(plane),
        "release": saved.get("release"),  # the admin's own canary analysis (not a service)
        # The gateway's blue-green state: the serving colour, the last cutover's facts.
        "cutover": await _get(plane, f"{plane.gateway_internal}/internal/cutover"),
        "failover": saved.get("failover"),  # the admin's own region failover (admin.region)
        "not_running": sorted(k for k, v in found.items() if v is None),
    }


async def _window(plane: ControlPlane, name: str, seconds: float) -> dict[str, Any] | None:
    try:
        resp = await plane.http.get(f"{plane.service_url(name)}/_control/stats",
                                    params={"window": seconds}, timeout=2.0)
    except httpx.HTTPError:
        return None  # a lost zone's connector: its fetches are gone with it
    data: dict[str, Any] | None = resp.json() if resp.status_code == 200 else None
    return data


async def connector_stats(plane: ControlPlane, seconds: float) -> dict[str, Any]:
    """``connector`` (the connectors' fetches, calls and distinct keys over the window,
    added up), ``pools`` (each connector's worker slots now), ``engine_pools`` (each
    zone's engine's; a lost zone's is absent) and ``control_plane_pools`` (each zone's
    control-plane tier, with one) for ``/v1/stats``."""
    names = _service_names(plane, "connector")
    # Each zone's serving engine (green after a cutover), named by its zone's engine.
    serving = {name: f"engine-{zone}" for zone, name in serving_engines(plane).items()}
    engines = list(serving)
    found = await asyncio.gather(*(_window(plane, n, seconds) for n in names + engines))
    windows = {n: w for n, w in zip(names + engines, found) if w is not None}
    return {"connector": merge_windows([w for n, w in windows.items() if n in names]),
            "pools": {n: w["slots"] for n, w in windows.items() if n in names},
            "engine_pools": {serving[n]: w["slots"] for n, w in windows.items()
                             if n in engines},
            "control_plane_pools": {n: w["control_plane_slots"] for n, w in windows.items()
                                    if n in names and w.get("control_plane_slots")}}


def _with_schedule(plane: ControlPlane, config: dict[str, Any]) -> dict[str, Any]:
    """The failover's metadata snapshot schedule as it runs (admin.snapshots), not only as
    it was asked for: its interval is what ``failover.rpo_bound_seconds`` reports."""
    section = config.get("failover")
    if section is not None and (section.get("metadata") or {}).get("snapshots"):
        config["failover"] = {**section, "metadata": {**section["metadata"],
                                                      **plane.snapshots.effective()}}
    return config


def scenario_routes(plane: ControlPlane) -> list[Route]:
    @handle_errors
    async def post(request: Request) -> Response:
        body = await read_json(request, MAX_SCENARIO_BODY)
        return JSONResponse(await apply_scenario(plane, body))

    @handle_errors
    async def get(request: Request) -> Response:
        return JSONResponse(_with_schedule(plane, await live_config(plane)))

    return [Route("/admin/scenario", post, methods=["POST"]),
            Route("/admin/config", get, methods=["GET"])]
