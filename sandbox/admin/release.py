"""The stand-in's blue-green release: ``POST /admin/release/cutover``, ``GET /admin/release``.

A cutover deploys ``version`` to the standby colour's engines (one per zone, the same
worker slots as the serving ones: ``engine-green-<zone>`` while blue serves), then asks the
gateway to switch new attempts to them and drain the old colour for ``drain_timeout``
seconds (:mod:`sandbox.cutover`: the gateway tracks the old colour's attempts, cuts what
still runs at the deadline and measures the drain). The call answers at the switch;
``GET /admin/release`` answers the gateway's account: ``phase`` (``idle``, ``draining``,
``done``), ``active`` colour, ``version``, ``drain_timeout`` and the simulator's facts
``inflight_at_switch``, ``dropped_requests`` and ``drain_seconds`` (null until drained, and
for good when the drain ran out).

``reset_release`` (the fault reset's) puts blue back in service at once and every blue and
green engine back on v1; nothing is cut.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin.plane import ControlPlane
from sandbox.errors import ApiError
from sandbox.service import handle_errors, read_json
from sandbox.versions import deployable_version

__all__ = ["MAX_DRAIN", "cutover_release", "release_routes", "release_status", "reset_release",
           "serving_engines"]

MAX_DRAIN = 3600.0  # seconds: a drain longer than any run is a mistake


def _engine(colour: str, zone: str) -> str:
    return f"engine-green-{zone}" if colour == "green" else f"engine-{zone}"


def serving_engines(plane: ControlPlane) -> dict[str, str]:
    """zone -> the name of the engine that serves it now (blue, or green after a cutover)."""
    return {zone: _engine(plane.colour, zone) for zone in plane.state["zones"]}


def _colour_engines(plane: ControlPlane, colour: str) -> list[str]:
    names = (_engine(colour, zone) for zone in plane.state["zones"])
    return [name for name in names if name in plane.state["services"]]


def _parse(body: dict[str, Any]) -> tuple[str, float]:
    unknown = set(body) - {"version", "drain_timeout"}
    if unknown:
        raise ApiError(400, "BAD_REQUEST", f"unknown fields {sorted(unknown)}")
    version, drain = deployable_version(body.get("version")), body.get("drain_timeout")
    if (isinstance(drain, bool) or not isinstance(drain, (int, float))
            or not 0 < drain <= MAX_DRAIN):
        raise ApiError(400, "BAD_REQUEST", f"drain_timeout must be seconds in (0, {MAX_DRAIN:g}]")
    return version, float(drain)


async def _deploy(plane: ControlPlane, names: list[str], version: str) -> list[str]:
    """``version`` on each engine; the names of those not running (a lost zone's)."""
    missed = []
    for name in names:
        try:
            await plane.post(f"{plane.service_url(name)}/_control", {"version": version})
        except ApiError:
            missed.append(name)
    return missed


async def cutover_release(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    version, drain = _parse(body)
    status = await release_status(plane)
    if status["phase"] == "draining":
        raise ApiError(409, "CONFLICT", "a cutover is still draining")
    target = "green" if status["active"] == "blue" else "blue"
    names = _colour_engines(plane, target)
    if not names:
        raise ApiError(409, "CONFLICT", f"this stand-in has no {target} engines")
    missed = await _deploy(plane, names, version)
    if len(missed) == len(names):
        raise ApiError(503, "ENGINE_UNAVAILABLE", f"no {target} engine is running")
    answer = await plane.post(f"{plane.gateway_internal}/internal/cutover",
                              {"version": version, "drain_timeout": drain})
    plane.colour = str(answer["active"])
    plane.audit.write(who="admin", method="CUTOVER", path=version,
                      status=f"to {target}, drain {drain:g}s, "
                             f"{answer['inflight_at_switch']:g} attempts in flight")
    return {**answer, "not_running": missed}


async def release_status(plane: ControlPlane) -> dict[str, Any]:
    """The gateway's account of the last cutover (it measures the drain)."""
    try:
        resp = await plane.http.get(f"{plane.gateway_internal}/internal/cutover", timeout=5.0)
    except httpx.HTTPError:
        raise ApiError(502, "UPSTREAM_ERROR", "gateway unreachable") from None
    if resp.status_code != 200:
        raise ApiError(502, "UPSTREAM_ERROR", f"the gateway answered {resp.status_code}")
    data: dict[str, Any] = resp.json()
    plane.colour = str(data.get("active", plane.colour))
    return data


async def reset_release(plane: ControlPlane) -> dict[str, Any]:
    """Blue serves again, every engine of both colours on v1; nothing is cut."""
    try:
        resp = await plane.http.delete(f"{plane.gateway_internal}/internal/cutover",
                                       timeout=5.0)
        answer: dict[str, Any] = resp.json()
    except (httpx.HTTPError, ValueError):  # a restarting gateway comes back blue and idle
        answer = {"active": "blue", "phase": "idle"}
    plane.colour = "blue"
    await _deploy(plane, _colour_engines(plane, "green"), "v1")
    if not plane.promoted_release:  # a promoted canary's version stays on blue
        await _deploy(plane, _colour_engines(plane, "blue"), "v1")
    return answer


def release_routes(plane: ControlPlane) -> list[Route]:
    @handle_errors
    async def cutover(request: Request) -> Response:
        return JSONResponse(await cutover_release(plane, await read_json(request)))

    @handle_errors
    async def status(request: Request) -> Response:
        return JSONResponse(await release_status(plane))

    return [Route("/admin/release/cutover", cutover, methods=["POST"]),
            Route("/admin/release", status, methods=["GET"])]
