"""The scenario schema: one strict, immutable description of a run.

A scenario file is the single source of truth for the simulator, the Chaos Toolkit
experiments and the Locust loads. ``workload``, ``slo`` and ``checks`` hold no
simulator concepts, so that all three runners read them the same way; ``topology`` is
the system's shape and ``faults`` its timeline. Values carry units in YAML and are
converted here, once, to seconds, requests per second and fractions.

Loading (YAML with line numbers, profiles and ``--set`` overrides) lives in
:mod:`sim.scenario_file`; this module only defines what a valid scenario is.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from .distributions import Constant, Distribution
from .units import parse_duration, parse_fraction, parse_quantity, parse_rate

__all__ = [
    "Scenario",
    "RunSpec",
    "SLO",
    "Topology",
    "Gateway",
    "HealthCheck",
    "Retries",
    "UserCap",
    "Engine",
    "Cache",
    "Connectors",
    "ConnectorRetries",
    "Provider",
    "RateLimit",
    "Metadata",
    "Workload",
    "Tenant",
    "ProfilePoint",
    "Diurnal",
    "Fault",
    "AzLoss",
    "ProviderOutage",
    "LatencyInjection",
    "TrafficSurge",
    "CacheFlush",
    "TokenRevocation",
    "CheckSpec",
    "Duration",
    "Rate",
    "Fraction",
    "Quantity",
    "BACKOFF_STRATEGIES",
    "RETRIABLE_OUTCOMES",
]

Duration = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Quantity = Annotated[float, BeforeValidator(parse_quantity)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]

BACKOFF_STRATEGIES = ("none", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter")
#: Outcomes a client may retry; ``unauthorized`` never is (a new attempt gets the same 401).
RETRIABLE_OUTCOMES = ("timeout", "rate_limited", "unavailable", "overload", "provider_error")


class Strict(BaseModel):
    """Unknown keys are errors; parsed scenarios never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- run and SLO


class RunSpec(Strict):
    """How long to simulate and how to aggregate; ``warmup`` is excluded from metrics."""

    duration: Duration = Field(gt=0)
    warmup: Duration = 0.0
    window: Duration = Field(default=10.0, gt=0)
    seed: int = 1
    replications: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _fits(self) -> "RunSpec":
        if self.warmup >= self.duration:
            raise ValueError("warmup must be shorter than duration")
        if self.window > self.duration - self.warmup:
            raise ValueError("window must fit in the measured part of the run")
        return self


class SLO(Strict):
    """The service level a window must meet to count as recovered (see ``rto_seconds``)."""

    latency_p95: Duration = 1.5
    error_rate: Fraction = 0.01
    #: RTO ends once windows have met the SLO for this long without a break.
    sustain: Duration = 120.0


# --------------------------------------------------------------------------- topology


class HealthCheck(Strict):
    """The load balancer's view of a zone: detection takes interval × failure_threshold."""

    interval: Duration = Field(default=10.0, gt=0)
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=2, ge=1)


class Retries(Strict):
    """Client-side retries of a whole query, with backoff and an optional retry budget."""

    max_attempts: int = Field(default=1, ge=1)
    backoff: Literal["none", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter"] = (
        "exponential"
    )
    base: Duration = 0.1
    cap: Duration = 10.0
    #: At most this many retries per first attempt (e.g. 10%), as a token bucket.
    budget: Fraction | None = None
    on: tuple[Literal["timeout", "rate_limited", "unavailable", "overload", "provider_error"], ...] = (
        RETRIABLE_OUTCOMES
    )


class UserCap(Strict):
    """A per-user concurrency cap from the policy store (``user: "*"`` caps every user)."""

    tenant: Name
    user: str = "*"
    max_concurrency: int = Field(ge=0)


class Gateway(Strict):
    """Admission, routing to healthy zones, request timeout and client retries.

    ``workers_per_zone: 0`` with a zero service time makes the gateway a pure router.
    """

    workers_per_zone: int = Field(default=0, ge=0)
    service_time: Distribution = Constant(value=0.0)
    timeout: Duration = Field(default=30.0, gt=0)
    health_check: HealthCheck = HealthCheck()
    retries: Retries = Retries()
    user_caps: tuple[UserCap, ...] = ()


class Engine(Strict):
    """The query engine: a worker pool per zone serving a version of the software."""

    workers_per_zone: int = Field(default=8, ge=1)
    service_time: Distribution
    queue_limit: int | None = Field(default=None, ge=0)
    #: Skip queued work whose client has already timed out (deadline propagation).
    drop_expired: bool = False
    version: str = "v1"


class Cache(Strict):
    """The regional Redis result cache, sharded over ``nodes_per_zone`` nodes in each zone."""

    enabled: bool = True
    ttl: Duration = Field(default=300.0, gt=0)
    latency: Distribution = Constant(value="1ms")
    #: Distinct result keys per tenant and connector object, drawn by Zipf popularity.
    keys: int = Field(default=1000, ge=1)
    zipf_s: float = Field(default=1.0, ge=0)
    nodes_per_zone: int = Field(default=1, ge=1)
    #: When a zone's nodes are lost, their shards fail over to nodes in other zones
    #: after this long; with ``replicas`` the data survives, otherwise they come back cold.
    failover_time: Duration = 30.0
    replicas: bool = True


class ConnectorRetries(Strict):
    """How a connector worker answers a 429: wait for Retry-After and try again."""

    max_attempts: int = Field(default=1, ge=1)
    honour_retry_after: bool = True
    #: A worker never waits longer than this for one Retry-After.
    max_wait: Duration = 5.0


class Connectors(Strict):
    """Stateless connector workers per zone; ``enabled: false`` makes SaaS calls instant."""

    enabled: bool = True
    workers_per_zone: int = Field(default=16, ge=1)
    queue_limit: int | None = Field(default=None, ge=0)
    timeout: Duration = Field(default=10.0, gt=0)
    retries: ConnectorRetries = ConnectorRetries()


class RateLimit(Strict):
    """Provider-side token buckets: per tenant, and one for the whole OmniSQL app."""

    per_tenant: Rate | None = None
    per_tenant_burst: int | None = Field(default=None, ge=1)
    app: Rate | None = None
    app_burst: int | None = Field(default=None, ge=1)
    retry_after: Duration = 1.0


class Provider(Strict):
    """A third-party SaaS API: its latency, rate limits, objects and background error rate."""

    latency: Distribution
    #: How fast the provider answers a call it refuses (429, 401, outage errors).
    reject_latency: Distribution = Constant(value="20ms")
    objects: tuple[Name, ...] = Field(min_length=1)
    rate_limit: RateLimit = RateLimit()
    error_rate: Fraction = 0.0


class Metadata(Strict):
    """PostgreSQL metadata: a primary and an asynchronous replica in another zone."""

    primary_zone: str | None = None
    replica_zone: str | None = None
    replication_lag: Distribution = Constant(value="1s")
    failover_time: Duration = 60.0


class Topology(Strict):
    zones: tuple[Name, ...] = Field(default=("az-a", "az-b", "az-c"), min_length=1)
    gateway: Gateway = Gateway()
    engine: Engine
    cache: Cache = Cache()
    connectors: Connectors = Connectors()
    providers: dict[Name, Provider] = Field(min_length=1)
    metadata: Metadata = Metadata()

    @model_validator(mode="after")
    def _zones(self) -> "Topology":
        if len(set(self.zones)) != len(self.zones):
            raise ValueError(f"zones must be unique: {list(self.zones)}")
        for label, zone in (
            ("metadata.primary_zone", self.metadata.primary_zone),
            ("metadata.replica_zone", self.metadata.replica_zone),
        ):
            if zone is not None and zone not in self.zones:
                raise ValueError(f"{label} {zone!r} is not one of the zones {list(self.zones)}")
        return self


# --------------------------------------------------------------------------- workload


class Tenant(Strict):
    """A tenant's open-loop query stream and its mix over ``connector.object`` targets."""

    rate: Rate
    users: int = Field(default=10, ge=1)
    mix: dict[str, Fraction] = Field(min_length=1)

    @model_validator(mode="after")
    def _mix_sums_to_one(self) -> "Tenant":
        total = sum(self.mix.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"mix shares must add up to 100%, they add up to {total:.2%}")
        for target in self.mix:
            if target.count(".") != 1:
                raise ValueError(f"mix target {target!r} must read connector.object, e.g. crm.accounts")
        return self


class ProfilePoint(Strict):
    """Traffic scale at a time; the profile is piecewise linear between points."""

    at: Duration
    scale: float = Field(ge=0)


class Diurnal(Strict):
    """A day's cosine: scale 1 at ``peak_at``, ``trough`` half a period away."""

    period: Duration = Field(default=86400.0, gt=0)
    peak_at: Duration = 14 * 3600.0
    trough: Fraction = 0.4


class Workload(Strict):
    """Who sends what, when: free of simulator concepts so load generators can read it."""

    #: Multiplies every tenant's rate (target profiles scale production traffic down).
    scale: float = Field(default=1.0, ge=0)
    tenants: dict[Name, Tenant] = Field(min_length=1)
    profile: tuple[ProfilePoint, ...] | Diurnal = (ProfilePoint(at=0.0, scale=1.0),)

    @model_validator(mode="after")
    def _profile_sorted(self) -> "Workload":
        if isinstance(self.profile, tuple):
            times = [point.at for point in self.profile]
            if not times or times != sorted(times):
                raise ValueError("profile points must be given in increasing time order")
        return self

    def total_rate(self) -> float:
        """Peak-free nominal rate: the sum of tenant rates times ``scale``."""
        return self.scale * sum(t.rate for t in self.tenants.values())


# --------------------------------------------------------------------------- faults


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
    """A tenant's rate multiplied by ``factor`` (a noisy tenant's flood)."""

    kind: Literal["traffic_surge"]
    tenant: str
    duration: Duration
    factor: float = Field(gt=0)
    #: Optional ramp-up time to the full factor.
    ramp: Duration = 0.0


class CacheFlush(_Fault):
    """An invalidation event: every cached key (or one tenant's) is dropped at ``at``."""

    kind: Literal["cache_flush"]
    tenant: str | None = None


class TokenRevocation(_Fault):
    """The provider revokes a fraction of the tenants' OAuth tokens: calls answer 401."""

    kind: Literal["token_revocation"]
    provider: str
    fraction: Fraction = 1.0


Fault = Annotated[
    Union[AzLoss, ProviderOutage, LatencyInjection, TrafficSurge, CacheFlush, TokenRevocation],
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- checks


class CheckSpec(Strict):
    """One check: ``{metric: latency_p95, op: "<=", value: 1.5s}`` (see :mod:`sim.checks`)."""

    name: str | None = None
    metric: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: Quantity
    #: Which windows the metric is computed over: the whole measured run, the windows
    #: before the first fault, or all but the recovery window (fault start to RTO end).
    over: Literal["run", "before_fault", "outside_recovery", "after_recovery"] = "run"

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        suffix = "" if self.over == "run" else f" ({self.over.replace('_', ' ')})"
        return f"{self.metric} {self.op} {self.value:g}{suffix}"


# --------------------------------------------------------------------------- the scenario


class Scenario(Strict):
    """A validated scenario: run settings, SLO, topology, workload, faults and checks."""

    name: Name
    description: str = ""
    run: RunSpec
    slo: SLO = SLO()
    topology: Topology
    workload: Workload
    faults: tuple[Fault, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    #: Named target profiles: dotted-path overrides applied by ``--profile NAME``.
    profiles: dict[Name, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _references(self) -> "Scenario":
        topo, tenants = self.topology, self.workload.tenants
        for name, tenant in tenants.items():
            for target in tenant.mix:
                connector, obj = target.split(".")
                provider = topo.providers.get(connector)
                if provider is None:
                    raise ValueError(f"tenant {name}: unknown connector {connector!r} in mix")
                if obj not in provider.objects:
                    raise ValueError(f"tenant {name}: {connector} has no object {obj!r}")
        for cap in topo.gateway.user_caps:
            if cap.tenant not in tenants:
                raise ValueError(f"user cap for unknown tenant {cap.tenant!r}")
        for fault in self.faults:
            _check_fault(fault, self)
        return self

    def first_fault_at(self) -> float | None:
        return min((f.at for f in self.faults), default=None)


def _check_fault(fault: Any, scenario: Scenario) -> None:
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
    if tenant is not None and tenant not in scenario.workload.tenants:
        raise ValueError(f"{fault.kind}: unknown tenant {tenant!r}")
