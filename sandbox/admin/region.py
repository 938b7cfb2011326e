"""The region loss on the stand-in: every zone lost at once, then the scenario's failover.

``POST /faults/region/lose`` acts out what ``sim.model.region`` models, with real processes:

1. **The loss.** The gateway stops serving the region's name at once (``503
   REGION_UNAVAILABLE``, or no answer until the client's timeout with ``blackhole``), every
   zone's process group (engines, connectors) is stopped, in-flight work dies with it, and
   the metadata primary is killed (PostgreSQL immediate shutdown: WAL not yet streamed is
   lost, so the RPO is the replica's real lag). The Redis cache is fenced: nothing that
   could reach it runs.
2. **The timeline.** The admin waits the scenario's detection + decision
   (:func:`sandbox.region.draw_timeline`: constants at the ``standin`` profile). These are
   inputs (an alarm, a human, infrastructure as code), not something the stand-in measures.
3. **The secondary region comes up** during the spin-up delay, on the same processes, as
   the simulator reuses its zones: the result cache is flushed (cold), the streaming replica
   is promoted to primary (with ``failover.metadata.mode: snapshot`` its content is then
   replaced by the newest snapshot taken before the loss, :mod:`sandbox.admin.snapshots`:
   the RPO is that snapshot's age), the zones' processes start again and are waited for until they
   answer their health checks, and tokens are revoked at the providers when KMS keys or
   connector secrets were not replicated (every SaaS call then answers 401). The spin-up
   ends when the delay has passed and the zones serve: a real start slower than the delay
   lengthens it, a faster one is not added to it.
4. **The DNS shift.** For one ``dns_ttl`` the gateway admits a request with probability
   ``elapsed / ttl`` and treats the rest as the lost region (the model's rule); then every
   client is on the secondary. What follows (a cold cache under real rate limits) is the
   stand-in's own dynamics, and the runner measures the RTO from its traffic.

``GET /faults`` shows the failover under ``region`` (its phase and the timeline's times);
``POST /faults/reset`` ends it wherever it is and brings everything back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from redis.exceptions import RedisError

from sandbox.admin.actions import invalidate
from sandbox.admin.leases import parse_lease
from sandbox.admin.plane import ControlPlane
from sandbox.admin.release import serving_engines
from sandbox.admin.scenario import applied
from sandbox.admin.snapshots import restore_newest
from sandbox.errors import ApiError
from sandbox.region import draw_timeline

__all__ = ["READY_SECONDS", "end_region", "lose_region"]

#: How long the spin-up waits for the zones' services to serve before it gives up (and
#: says so in ``GET /faults``): far above a process start on a loaded machine.
READY_SECONDS = 90.0


async def _gateway_region(plane: ControlPlane, phase: str, section: dict[str, Any] | None,
                          ) -> None:
    body: dict[str, Any] = {"phase": phase}
    if section is not None:
        body.update(blackhole=section["blackhole"], ttl_seconds=section["dns_ttl_seconds"],
                    seed=int(section["seed"]))
    await plane.post(f"{plane.gateway_internal}/internal/region", body)


def _section(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    section = applied(plane).get("failover")
    if section is None:
        raise ApiError(409, "CONFLICT", "no failover timeline: apply a scenario with a "
                       "failover block first (POST /admin/scenario)")
    blackhole = body.pop("blackhole", section["blackhole"])
    if not isinstance(blackhole, bool):
        raise ApiError(400, "BAD_REQUEST", "blackhole must be a boolean")
    if body:
        raise ApiError(400, "BAD_REQUEST", f"unknown fields {sorted(body)}")
    return {**section, "blackhole": blackhole}


async def lose_region(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    """Lose every zone and the metadata primary now; the failover runs in the background."""
    lease = parse_lease(body)
    section = _section(plane, body)
    if plane.region is not None and plane.region["phase"] != "failed_over":
        raise ApiError(409, "CONFLICT", "a region loss is already under way")
    if plane.demoted:  # the secondary would have no streaming replica to promote
        raise ApiError(409, "CONFLICT", "rebuild the old metadata primary first "
                       "(POST /admin/metadata/rebuild)")
    zones, lost_at, killed = list(plane.state["zones"]), time.time(), plane.primary
    await _gateway_region(plane, "down", section)  # first: clients see the loss at once
    await asyncio.gather(plane.snapshots.stop(), plane.kill_node(killed),
                         *(plane.supervisor("stopProcessGroup", z, True) for z in zones))
    plane.faults.metadata_primary_killed = True
    plane.faults.zones_lost.update(zones)
    delays = draw_timeline(section)
    plane.region = {"phase": "lost", "blackhole": section["blackhole"], "lost_at": lost_at,
                    "timeline": delays, "dns_ttl_seconds": section["dns_ttl_seconds"],
                    "missing": section["missing"], "metadata_killed": killed.name,
                    "switch_seconds": None, "shifted_seconds": None, "error": None,
                    "metadata_snapshot": None}
    plane.region_task = asyncio.create_task(_fail_over(plane, section, delays))
    held = plane.leases.grant("region", lease, lambda: end_region(plane))
    return {**plane.region, **held}


async def _fail_over(plane: ControlPlane, section: dict[str, Any],
                     delays: dict[str, float]) -> None:
    region = plane.region
    assert region is not None
    # The timeline runs from the loss (stopping the processes took some of it).
    lost_at = region["lost_at"]
    await asyncio.sleep(max(0.0, lost_at + delays["detection"] + delays["decision"]
                            - time.time()))
    region["phase"] = "spinning_up"
    # The spin-up is the secondary coming up, as the simulator's delay is: its processes
    # start at the beginning of it, and it ends when the delay has passed and they serve
    # (a start slower than the delay lengthens it; a faster one is not added to it).
    errors, _ = await asyncio.gather(
        _bring_up_secondary(plane, section),
        asyncio.sleep(max(0.0, lost_at + sum(delays.values()) - time.time())))
    region["error"] = "; ".join(errors) or None  # said in GET /faults; the RTO shows the rest
    region["switch_seconds"] = round(time.time() - region["lost_at"], 3)
    region["phase"] = "shifting"
    await _gateway_region(plane, "shifting", section)
    await asyncio.sleep(section["dns_ttl_seconds"])
    region["shifted_seconds"] = round(time.time() - region["lost_at"], 3)
    region["phase"] = "failed_over"
    plane.audit.write(who="control-plane", method="FAILOVER", path="region",
                      status=f"failed over: {region}")


async def _bring_up_secondary(plane: ControlPlane, section: dict[str, Any]) -> list[str]:
    """The secondary region's data plane: a cold cache, the replica promoted, no readable
    OAuth token when KMS keys or secrets were not copied, the zones' processes serving.
    Every step is tried (a failed promotion must not leave the zones down); what failed."""
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("flush", lambda: invalidate(plane, {})), ("promote", plane.promote)]
    if (section.get("metadata") or {}).get("snapshots"):  # the newest snapshot, restored
        steps.append(("restore", lambda: _restore_snapshot(plane)))
    if {"kms_keys", "connector_secrets"} & set(section["missing"]):
        steps.append(("revoke", lambda: _revoke_tokens(plane)))
    steps.append(("start", lambda: _start_zones(plane)))
    errors = []
    for name, step in steps:
        try:
            await step()
        except (ApiError, RedisError) as err:
            errors.append(f"{name}: {getattr(err, 'message', None) or err}")
    return errors


async def _restore_snapshot(plane: ControlPlane) -> None:
    """Replace what the promoted replica streamed by the newest completed snapshot: the
    writes after its start are lost (RPO = loss − its start; sandbox.admin.snapshots)."""
    region = plane.region
    assert region is not None
    region["metadata_snapshot"] = await restore_newest(plane.snapshots, plane.primary.port,
                                                       region["lost_at"])


async def _revoke_tokens(plane: ControlPlane) -> None:
    for name, url in plane.state["providers"].items():
        answer = await plane.post(f"{url}/_control/revoke", {"fraction": 1.0})
        plane.faults.tokens_expired[name] = answer["revoked"]


async def _start_zones(plane: ControlPlane) -> None:
    zones = list(plane.state["zones"])
    await asyncio.gather(*(plane.supervisor("startProcessGroup", z, True) for z in zones))
    # The data plane that serves: each zone's connector and serving engine (not the
    # blue-green standby colour, which takes no traffic: sandbox.admin.release).
    serving = set(serving_engines(plane).values())
    await _serving(plane, [n for n in plane.state["services"] if n in serving
                           or n.startswith("connector-") or n == "engine-canary"])
    plane.faults.zones_lost.difference_update(zones)


async def _serving(plane: ControlPlane, names: list[str], timeout: float = READY_SECONDS,
                   ) -> None:
    """Wait until every one of the zones' services answers its health check: the spin-up
    ends when the data plane serves (a started process is not yet listening), as a DNS
    failover waits for the secondary's health checks."""
    loop = asyncio.get_running_loop()
    deadline, pending = loop.time() + timeout, set(names)
    while pending:
        answers = await asyncio.gather(*(_healthy(plane, n) for n in sorted(pending)))
        pending -= {n for n, ok in zip(sorted(pending), answers) if ok}
        if pending and loop.time() > deadline:
            raise ApiError(504, "UPSTREAM_TIMEOUT", f"not serving after {timeout:g}s: "
                           f"{sorted(pending)}")
        await asyncio.sleep(0.1 if pending else 0.0)


async def _healthy(plane: ControlPlane, name: str) -> bool:
    try:
        resp = await plane.http.get(f"{plane.service_url(name)}/health", timeout=1.0)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


async def end_region(plane: ControlPlane) -> None:
    """Stop the failover wherever it is and let clients reach the data plane again (the
    reset then restarts the zones and the metadata node that may run)."""
    plane.leases.end("region")
    task, plane.region_task = plane.region_task, None
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await _gateway_region(plane, "up", None)
    plane.region = None
