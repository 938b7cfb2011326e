"""The lab's fault API: lose/restore an AZ, degrade providers, expire tokens, kill the
metadata primary, and one idempotent reset that rolls all of it back.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin.actions import rollback_canary
from sandbox.admin.plane import ControlPlane
from sandbox.errors import ApiError
from sandbox.mock_saas import parse_faults, parse_fraction
from sandbox.service import handle_errors, read_json

__all__ = ["fault_routes", "lose_zone", "reset", "restore_zone"]


def _zone(plane: ControlPlane, zone: str) -> str:
    if zone not in plane.state["zones"]:
        raise ApiError(404, "NOT_FOUND", f"unknown zone {zone}")
    return zone


def _provider(plane: ControlPlane, name: Any) -> str:
    if not isinstance(name, str) or name not in plane.state["providers"]:
        raise ApiError(404, "NOT_FOUND", "unknown provider")
    return name


async def lose_zone(plane: ControlPlane, zone: str) -> dict[str, Any]:
    """Stop the AZ's group and kill every metadata node living in it."""
    await plane.supervisor("stopProcessGroup", zone, True)
    killed = []
    for node in plane.nodes:
        if node.zone == zone and await plane.role(node) != "down":
            await plane.kill_node(node)
            killed.append(node.name)
    plane.faults.zones_lost.add(zone)
    return {"zone": zone, "lost": True, "metadata_killed": killed}


async def restore_zone(plane: ControlPlane, zone: str) -> dict[str, Any]:
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
        await plane.http.delete(url)
        plane.faults.providers.pop(name, None)
        return {"provider": name, "faults": None}
    faults = parse_faults(body).to_json()
    plane.faults.providers[name] = await plane.post(url, faults)
    return {"provider": name, "faults": plane.faults.providers[name]}


async def expire_tokens(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    name = _provider(plane, body.get("provider"))
    answer = await plane.post(f"{plane.state['providers'][name]}/_control/revoke",
                              {"fraction": parse_fraction(body)})
    plane.faults.tokens_expired[name] = plane.faults.tokens_expired.get(name, 0) + answer["revoked"]
    return {"provider": name, "revoked": answer["revoked"]}


async def kill_primary(plane: ControlPlane) -> dict[str, Any]:
    node = plane.primary
    await plane.kill_node(node)
    plane.faults.metadata_primary_killed = True
    return {"killed": node.name, "zone": node.zone}


def active(plane: ControlPlane) -> dict[str, Any]:
    f = plane.faults
    return {"zones_lost": sorted(f.zones_lost), "providers": f.providers,
            "tokens_expired": f.tokens_expired, "canary": plane.canary,
            "metadata_primary_killed": f.metadata_primary_killed,
            "metadata_promoted": plane.promoted,
            "metadata_needs_rebuild": sorted(plane.demoted)}


async def reset(plane: ControlPlane) -> dict[str, Any]:
    """Undo every fault that can be undone; calling it twice is harmless."""
    for zone in plane.state["zones"]:
        await restore_zone(plane, zone)
    for name in plane.state["providers"]:
        await provider_fault(plane, name, None)
    await rollback_canary(plane)
    for node in plane.nodes:
        if plane.may_start(node) and await plane.role(node) == "down":
            await plane.supervisor("startProcess", f"shared:{node.name}", True)
            await plane.wait_back(node)
    plane.faults.metadata_primary_killed = False
    return active(plane)


def fault_routes(plane: ControlPlane) -> list[Route]:
    @handle_errors
    async def zone_action(request: Request) -> Response:
        zone = _zone(plane, request.path_params["zone"])
        act = request.path_params["action"]
        if act not in ("lose", "restore"):
            raise ApiError(404, "NOT_FOUND", "unknown zone action")
        fn = lose_zone if act == "lose" else restore_zone
        return JSONResponse(await fn(plane, zone))

    @handle_errors
    async def provider(request: Request) -> Response:
        body = None if request.method == "DELETE" else await read_json(request)
        return JSONResponse(await provider_fault(plane, request.path_params["name"], body))

    @handle_errors
    async def tokens(request: Request) -> Response:
        return JSONResponse(await expire_tokens(plane, await read_json(request)))

    @handle_errors
    async def primary_kill(request: Request) -> Response:
        return JSONResponse(await kill_primary(plane))

    async def listing(request: Request) -> Response:
        return JSONResponse(active(plane))

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
    ]
