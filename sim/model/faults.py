"""Faults as SimPy processes on the scenario's timeline.

Each fault waits for its start, acts through a component's narrow method
(``zone.fail()``, ``provider.outage``, ``cache.flush()``...), and undoes itself when
its duration ends. Every fault adds a shaded window to the run's timeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from labcore.scenario import (
    AzLoss,
    CacheFlush,
    GrayFailure,
    LatencyInjection,
    ProviderOutage,
    RegionLoss,
    TokenRevocation,
    TrafficSurge,
)

from .gray import gray_failure
from .region import region_loss

if TYPE_CHECKING:
    import simpy

    from .system import System

__all__ = ["start_faults"]


def start_faults(system: "System") -> None:
    for fault in system.scenario.faults:
        system.env.process(_FAULTS[type(fault)](system, fault))  # type: ignore[arg-type]


def _wait_until(system: "System", at: float) -> "simpy.Event":
    return system.env.timeout(max(0.0, at - system.env.now))


def _az_loss(system: "System", fault: AzLoss) -> Iterator["simpy.Event"]:
    yield _wait_until(system, fault.at)
    zone = system.zones[system.zone_names.index(fault.zone)]
    zone.fail(system.client.inflight(), system.client.finish, system.cache, fault.blackhole)
    rpo = system.metadata.zone_lost(zone.index, system.env.now)
    detail = f"lost {fault.zone}" + (f", metadata RPO {rpo:.1f}s" if rpo is not None else "")
    system.mark(fault, detail)
    if fault.duration is not None:
        yield system.env.timeout(fault.duration)
        zone.recover(system.cache)
        system.mark_end(fault)


def _provider_outage(system: "System", fault: ProviderOutage) -> Iterator["simpy.Event"]:
    yield _wait_until(system, fault.at)
    provider = system.provider(fault.provider)
    provider.outage = True
    system.mark(fault, f"{fault.provider} outage")
    yield system.env.timeout(fault.duration)
    provider.outage = False
    system.mark_end(fault)


def _latency_injection(system: "System", fault: LatencyInjection) -> Iterator["simpy.Event"]:
    yield _wait_until(system, fault.at)
    target, attr = _latency_target(system, fault.target)
    setattr(target, attr, getattr(target, attr) * fault.factor)
    system.mark(fault, f"{fault.target} latency x{fault.factor:g}")
    yield system.env.timeout(fault.duration)
    setattr(target, attr, getattr(target, attr) / fault.factor)
    system.mark_end(fault)


def _latency_target(system: "System", target: str) -> tuple[Any, str]:
    if target == "engine":
        return system.engine, "factor"
    if target == "cache":
        return system.engine, "cache_factor"
    if target == "gateway":
        return system.gateway, "factor"
    return system.provider(target.split(":", 1)[1]), "factor"


def _traffic_surge(system: "System", fault: TrafficSurge) -> Iterator["simpy.Event"]:
    # The workload's rate function already contains the surge (thinning needs its bound
    # in advance); this process only puts it on the timeline.
    yield _wait_until(system, fault.at)
    who = "every tenant's" if fault.tenants_all else fault.tenant
    where = f" into {fault.zone}" if fault.zone is not None else ""
    system.mark(fault, f"{who} traffic x{fault.factor:g}{where}")
    yield system.env.timeout(fault.duration)
    system.mark_end(fault)


def _cache_flush(system: "System", fault: CacheFlush) -> Iterator["simpy.Event"]:
    yield _wait_until(system, fault.at)
    tenant = None if fault.tenant is None else system.tenant_names.index(fault.tenant)
    system.cache.flush(tenant)
    system.mark(fault, f"cache flush ({fault.tenant or 'all tenants'})")
    system.mark_end(fault)


def _token_revocation(system: "System", fault: TokenRevocation) -> Iterator["simpy.Event"]:
    yield _wait_until(system, fault.at)
    tenants = list(range(len(system.tenant_names)))
    count = round(fault.fraction * len(tenants))
    chosen = sorted(system.streams.get("faults.token_revocation").sample(tenants, count))
    system.provider(fault.provider).revoke(chosen)
    system.mark(fault, f"{fault.provider} tokens revoked for {count} tenant(s)")
    system.mark_end(fault)


_FAULTS: dict[type, Callable[[Any, Any], Iterator[Any]]] = {
    AzLoss: _az_loss,
    ProviderOutage: _provider_outage,
    LatencyInjection: _latency_injection,
    TrafficSurge: _traffic_surge,
    CacheFlush: _cache_flush,
    TokenRevocation: _token_revocation,
    RegionLoss: region_loss,
    GrayFailure: gray_failure,
}
