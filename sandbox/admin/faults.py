"""The lab's fault API: lose/restore an AZ, degrade providers, expire tokens, kill the
metadata primary, and one idempotent reset that rolls all of it back.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin.actions import refresh_tokens, rollback_canary
from sandbox.admin.leases import DEFAULT_LEASE, parse_lease
from sandbox.admin.plane import ControlPlane
from sandbox.admin.region import end_region, lose_region
from sandbox.admin.release import reset_release
from sandbox.admin.scenario import applied, apply_config
from sandbox.errors import ApiError
from sandbox.mock_saas import parse_faults, parse_fraction
from sandbox.service import handle_errors, read_json
from sandbox.standin import STANDIN_FILE

__all__ = ["fault_routes", "lose_zone", "reset", "restore_zone"]


def _zone(plane: ControlPlane, zone: str) -> str:
    if zone not in plane.state["zones"]:
        raise ApiError(404, "NOT_FOUND", f"unknown zone {zone}")
    return zone


def _provider(plane: ControlPlane, name: Any) -> str:
    if not isinstance(name, str) or name not in plane.state["providers"]:
        raise ApiError(404, "NOT_FOUND", "unknown provider")
    return name


async def lose_zone(plane: ControlPlane, zone: str, lease: float = DEFAULT_LEASE
                    ) -> dict[str, Any]:
    """Stop the AZ's group and kill every metadata node living in it, for `lease` seconds."""
    await plane.supervisor("stopProcessGroup", zone, True)
    killed = []
    for node in plane.nodes:
        if node.zone == zone and await plane.role(node) != "down":
            await plane.kill_node(node)
            killed.append(node.name)
    plane.faults.zones_lost.add(zone)
    held = plane.leases.grant(f"zone:{zone}", lease, lambda: restore_zone(plane, zone))
    return {"zone": zone, "lost": True, "metadata_killed": killed, **held}


async def restore_zone(plane: ControlPlane, zone: str) -> dict[str, Any]:
    plane.leases.end(f"zone:{zone}")
    await plane.supervisor("startProcessGroup", zone, True)
    started = []
    for node in plane.nodes:
        if node.zone == zone and plane.may_start(node) and await plane.role(node) == "down":
            await plane.supervisor("startProcess", f"shared:{node.name}", True)
            started.append(node.name)
    for name in started:
        await plane.wait_back(plane.node(name))
    plane.faults.zones_lost.discard(zone)
    return {"zone": zone, "lost": False, "metadata_started": started}


async def provider_fault(plane: ControlPlane, name: str, body: dict[str, Any] | None
                         ) -> dict[str, Any]:
    url = f"{plane.state['providers'][_provider(plane, name)]}/_control/faults"
    if body is None:
        plane.leases.end(f"provider:{name}")
        await plane.http.delete(url)
        plane.faults.providers.pop(name, None)
        return {"provider": name, "faults": None}
    lease = parse_lease(body)
    faults = parse_faults(body).to_json()
    plane.faults.providers[name] = await plane.post(url, faults)
    held = plane.leases.grant(f"provider:{name}", lease,
                              lambda: provider_fault(plane, name, None))
    return {"provider": name, "faults": plane.faults.providers[name], **held}


async def expire_tokens(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    lease = parse_lease(body)
    name = _provider(plane, body.get("provider"))
    answer = await plane.post(f"{plane.state['providers'][name]}/_control/revoke",
                              {"fraction": parse_fraction(body)})
    plane.faults.tokens_expired[name] = plane.faults.tokens_expired.get(name, 0) + answer["revoked"]
    held = plane.leases.grant(f"tokens:{name}", lease,
                              lambda: refresh_tokens(plane, {"provider": name}))
    return {"provider": name, "revoked": answer["revoked"], **held}


async def kill_primary(plane: ControlPlane, lease: float = DEFAULT_LEASE) -> dict[str, Any]:
    node = plane.primary
    await plane.kill_node(node)
    plane.faults.metadata_primary_killed = True
    held = plane.leases.grant("metadata_primary", lease, lambda: restart_primary(plane))
    return {"killed": node.name, "zone": node.zone, **held}


async def restart_primary(plane: ControlPlane) -> None:
    """The kill's revert: the designated primary runs again (unless a promotion demoted it:
    then the promoted replica is the primary and there is nothing to restart)."""
    plane.leases.end("metadata_primary")
    node = plane.primary
    if plane.may_start(node) and await plane.role(node) == "down":
        await plane.supervisor("startProcess", f"shared:{node.name}", True)
        await plane.wait_back(node)
    plane.faults.metadata_primary_killed = False


async def _gateway_canary_weight(plane: ControlPlane) -> float | None:
    try:
        resp = await plane.http.get(f"{plane.gateway_internal}/internal/zones", timeout=2.0)
        return float(resp.json()["canary_weight"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


async def active(plane: ControlPlane) -> dict[str, Any]:
    """What is injected now. The canary weight is the gateway's own, so a weight set by any
    caller (not only `POST /admin/canary`) shows here; `leases` says when each fault ends."""
    f = plane.faults
    weight = await _gateway_canary_weight(plane)
    canary = plane.canary
    if canary is None and weight:
        canary = {"version": None, "weight": weight, "set_outside_admin_api": True}
    return {"zones_lost": sorted(f.zones_lost), "providers": f.providers,
            "tokens_expired": f.tokens_expired, "canary": canary, "canary_weight": weight,
            "metadata_primary_killed": f.metadata_primary_killed,
            "metadata_promoted": plane.promoted,
            "metadata_needs_rebuild": sorted(plane.demoted),
            "region": plane.region, "leases": plane.leases.listing()}


async def reset(plane: ControlPlane) -> dict[str, Any]:
    """Undo every fault that can be undone and restore the tokens and the applied
    scenario's settings; calling it twice is harmless."""
    await reset_release(plane)  # first: a cutover's drain must not cut while the rest runs
    await end_region(plane)
    for zone in plane.state["zones"]:
        await restore_zone(plane, zone)
    for name in plane.state["providers"]:
        await provider_fault(plane, name, None)
    await rollback_canary(plane)
    plane.leases.end("metadata_primary")
    for node in plane.nodes:
        if plane.may_start(node) and await plane.role(node) == "down":
            await plane.supervisor("startProcess", f"shared:{node.name}", True)
            await plane.wait_back(node)
    plane.faults.metadata_primary_killed = False
    await _restore_settings(plane)
    return await active(plane)


async def _restore_settings(plane: ControlPlane) -> None:
    """What a run changed besides faults: every provider's tokens are refreshed (a revocation
    must not outlive the run that made it: the next run would start with 401s), and the
    applied scenario's settings are pushed again (cache options, caps, pools, limits a run or
    an operator changed). Without an applied scenario the settings are left as they are."""
    for name in plane.state["providers"]:
        await refresh_tokens(plane, {"provider": name})
    if (plane.layout.root / STANDIN_FILE).exists():
        await apply_config(plane, applied(plane))


def fault_routes(plane: ControlPlane) -> list[Route]:
    @handle_errors
    async def zone_action(request: Request) -> Response:
        zone = _zone(plane, request.path_params["zone"])
        act = request.path_params["action"]
        if act not in ("lose", "restore"):
            raise ApiError(404, "NOT_FOUND", "unknown zone action")
        lease = parse_lease(body := await read_json(request))
        if body:
            raise ApiError(400, "BAD_REQUEST", f"unknown fields {sorted(body)}")
        if act == "restore":
            return JSONResponse(await restore_zone(plane, zone))
        return JSONResponse(await lose_zone(plane, zone, lease))

    @handle_errors
    async def provider(request: Request) -> Response:
        body = None if request.method == "DELETE" else await read_json(request)
        return JSONResponse(await provider_fault(plane, request.path_params["name"], body))

    @handle_errors
    async def tokens(request: Request) -> Response:
        return JSONResponse(await expire_tokens(plane, await read_json(request)))

    @handle_errors
    async def primary_kill(request: Request) -> Response:
        lease = parse_lease(body := await read_json(request))
        if body:
            raise ApiError(400, "BAD_REQUEST", f"unknown fields {sorted(body)}")
        return JSONResponse(await kill_primary(plane, lease))

    @handle_errors
    async def region(request: Request) -> Response:
        return JSONResponse(await lose_region(plane, await read_json(request)))

    async def listing(request: Request) -> Response:
        return JSONResponse(await active(plane))

    @handle_errors
    async def do_reset(request: Request) -> Response:
        return JSONResponse(await reset(plane))

    return [
        Route("/faults", listing),
        Route("/faults/reset", do_reset, methods=["POST"]),
        Route("/faults/az/{zone}/{action}", zone_action, methods=["POST"]),
        Route("/faults/provider/{name}", provider, methods=["POST", "DELETE"]),
        Route("/faults/tokens/expire", tokens, methods=["POST"]),
        Route("/faults/metadata/primary/kill", primary_kill, methods=["POST"]),
        Route("/faults/region/lose", region, methods=["POST"]),
    ]
