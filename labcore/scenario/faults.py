"""The fault timeline: one model per fault kind, discriminated by ``kind``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from .base import Duration, Fraction, Strict

__all__ = [
    "AzLoss", "CacheFlush", "Fault", "GrayFailure", "LatencyInjection", "ProviderOutage",
    "RegionLoss", "TokenRevocation", "TrafficSurge", "check_fault", "check_outlier_detection",
]


class _Fault(Strict):
    at: Duration


class AzLoss(_Fault):
    """Every gateway, engine, connector and cache node of the zone fails at ``at``."""

    kind: Literal["az_loss"]
    zone: str
    duration: Duration | None = None
    #: Connections to the lost zone hang until the client times out instead of failing fast.
    blackhole: bool = False


class ProviderOutage(_Fault):
    """The provider answers every call with an error for ``duration``."""

    kind: Literal["provider_outage"]
    provider: str
    duration: Duration


class LatencyInjection(_Fault):
    """Multiply the service time of a tier (``engine``, ``cache``, ``provider:NAME``)."""

    kind: Literal["latency_injection"]
    target: str = Field(pattern=r"^(engine|cache|gateway|provider:[A-Za-z][A-Za-z0-9_-]*)$")
    duration: Duration
    factor: float = Field(gt=0)


class TrafficSurge(_Fault):
    """A tenant's rate multiplied by ``factor`` (a noisy tenant's flood); ``tenant: "*"``
    multiplies every tenant's. With ``zone``, the surge's extra requests (the rate above
    what the tenant would send without this surge) all arrive at that zone: the load
    balancer routes them there while it deems the zone routable, else like any other
    request (a zonal client fleet, a batch job pinned to one zone's endpoint)."""

    kind: Literal["traffic_surge"]
    tenant: str
    duration: Duration
    factor: float = Field(gt=0)
    #: Optional ramp-up time to the full factor.
    ramp: Duration = 0.0
    zone: str | None = None

    @property
    def tenants_all(self) -> bool:
        """``tenant: "*"``: the surge applies to every tenant."""
        return self.tenant == "*"

    def applies_to(self, tenant: str) -> bool:
        return self.tenant == tenant or self.tenants_all


class CacheFlush(_Fault):
    """An invalidation event: every cached key (or one tenant's) is dropped at ``at``."""

    kind: Literal["cache_flush"]
    tenant: str | None = None


class TokenRevocation(_Fault):
    """The provider revokes a fraction of the tenants' OAuth tokens: calls answer 401."""

    kind: Literal["token_revocation"]
    provider: str
    fraction: Fraction = 1.0


class RegionLoss(_Fault):
    """The whole primary region is lost (every zone); the ``failover:`` block says how the
    secondary region takes over. ``blackhole``: clients still resolving the old region
    hang until they time out instead of failing fast."""

    kind: Literal["region_loss"]
    blackhole: bool = False


class GrayFailure(_Fault):
    """One zone's tier degrades without going down: its service times are multiplied by
    ``latency_factor``, a share ``error_rate`` of the attempts it serves fail
    (``unavailable``) at the end of their service there, and only ``capacity`` of its
    workers keep serving (rounded; work in service finishes). Up/down probes still see
    the zone up. Ends after ``duration`` (or with the run)."""

    kind: Literal["gray_failure"]
    zone: str
    tier: Literal["gateway", "engine", "connector"] = "engine"
    duration: Duration | None = None
    latency_factor: float = Field(default=1.0, gt=0)
    error_rate: Fraction = 0.0
    capacity: Fraction = 1.0


Fault = Annotated[
    Union[AzLoss, ProviderOutage, LatencyInjection, TrafficSurge, CacheFlush, TokenRevocation,
          RegionLoss, GrayFailure],
    Field(discriminator="kind"),
]


def check_fault(fault: Any, scenario: Any) -> None:
    """Cross-references of one fault: its start, zone, provider and tenant exist."""
    topo = scenario.topology
    if fault.at >= scenario.run.duration:
        raise ValueError(f"{fault.kind} at {fault.at:g}s starts after the run ends")
    zone = getattr(fault, "zone", None)
    if zone is not None and zone not in topo.zones:
        raise ValueError(f"{fault.kind}: unknown zone {zone!r}, zones are {list(topo.zones)}")
    provider = getattr(fault, "provider", None)
    if isinstance(fault, LatencyInjection) and fault.target.startswith("provider:"):
        provider = fault.target.split(":", 1)[1]
    if provider is not None and provider not in topo.providers:
        raise ValueError(f"{fault.kind}: unknown provider {provider!r}")
    tenant = getattr(fault, "tenant", None)
    every = isinstance(fault, TrafficSurge) and fault.tenants_all
    if tenant is not None and not every and tenant not in scenario.workload.tenants:
        raise ValueError(f"{fault.kind}: unknown tenant {tenant!r}")
    if isinstance(fault, TrafficSurge) and fault.zone is not None and fault.factor <= 1.0:
        raise ValueError(f"traffic_surge: factor {fault.factor:g} with a zone: a zone-"
                         "targeted surge adds requests to that zone, so factor must be above 1")
    if isinstance(fault, GrayFailure):
        _check_gray_failure(fault, scenario)


def _check_gray_failure(fault: GrayFailure, scenario: Any) -> None:
    topo = scenario.topology
    if fault.tier == "gateway" and topo.gateway.workers_per_zone == 0:
        raise ValueError("gray_failure: tier gateway has no workers (workers_per_zone: 0)")
    if fault.tier == "connector" and not topo.connectors.enabled:
        raise ValueError("gray_failure: tier connector is disabled")
    if scenario.release is not None:
        raise ValueError("gray_failure cannot be combined with a release (both wrap the "
                         "engine's service)")


def check_outlier_detection(scenario: Any) -> None:
    """Outlier detection and a release both watch the client's outcomes: not both."""
    if scenario.topology.gateway.outlier_detection is not None and scenario.release is not None:
        raise ValueError("topology.gateway.outlier_detection cannot be combined with a release "
                         "(both watch the client's outcomes)")
