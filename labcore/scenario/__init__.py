"""The scenario schema: one strict, immutable description of a run.

A scenario file is the single source of truth for the simulator, the Chaos Toolkit
experiments and the Locust loads. ``workload``, ``slo`` and ``checks`` hold no
simulator concepts, so that all three runners read them the same way; ``topology`` is
the system's shape and ``faults`` its timeline. Values carry units in YAML and are
converted here, once, to seconds, requests per second and fractions.

Loading (YAML with line numbers, profiles and ``--set`` overrides) lives in
:mod:`labcore.scenario_file`; this module only defines what a valid scenario is.
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

from ..distributions import Constant, Distribution
from ..units import parse_duration, parse_fraction, parse_quantity, parse_rate

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
    "RegionLoss",
    "GrayFailure",
    "OutlierDetection",
    "Autoscaling",
    "ClosedLoop",
    "Release",
    "Canary",
    "CanaryAnalysis",
    "NewVersion",
    "BlueGreen",
    "Failover",
    "MetadataReplication",
    "ResiliencePolicy",
    "RecoveryTarget",
    "DEPENDENCIES",
    "Mitigation",
    "UserCapMitigation",
    "SoftCache",
    "Coalescing",
    "XFetch",
    "CacheScale",
    "TokenRefresh",
    "RetryPolicy",
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
RetryOutcome = Literal["timeout", "rate_limited", "unavailable", "overload", "provider_error"]
RETRIABLE_OUTCOMES: tuple[RetryOutcome, ...] = (
    "timeout", "rate_limited", "unavailable", "overload", "provider_error"
)


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
    # -- issue 14 (model): per-tier wait distributions, opt-in ---------------------------
    #: Record a histogram of queue waits per tier (2% log bins) and report
    #: ``<tier>.wait_p95``, ``<tier>.wait_p99`` and ``<tier>.p_wait_over_<x>``.
    wait_histograms: bool = False
    #: The ``x`` of ``<tier>.p_wait_over_<x>`` (``P(wait > x)``), when histograms are on.
    wait_over: tuple[Duration, ...] = (1.0,)
    # -- end issue 14 ----------------------------------------------------------------------

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
    on: tuple[RetryOutcome, ...] = RETRIABLE_OUTCOMES


class UserCap(Strict):
    """A per-user concurrency cap from the policy store (``user: "*"`` caps every user)."""

    tenant: Name
    user: str = "*"
    max_concurrency: int = Field(ge=0)


# -- issue 14 (model): outlier detection --------------------------------------------------


class OutlierDetection(Strict):
    """Passive outlier detection of zones from the attempts' own outcomes, as Envoy's.

    An attempt *fails* for the detector when it ends ``unavailable``, ``overload`` or
    ``timeout`` (what the balancer sees as a 5xx or a gateway timeout), or, with
    ``slow_threshold``, takes longer than that. A zone is ejected (taken out of routing)
    after ``consecutive_failures`` failed attempts in a row, or at the end of an
    ``interval`` in which it had at least ``request_volume`` attempts and a failed share
    of at least ``failure_percentage``, or (``success_rate_stdev_factor``) a success rate
    below the mean of the zones minus that many standard deviations (needs
    ``minimum_hosts`` zones with that volume). An ejected zone returns after
    ``base_ejection_time`` × the number of times it has been ejected (at most
    ``max_ejection_time``), checked every ``interval``; at most ``max_ejection_percent``
    of the zones are ejected at once (at least one may always be).
    """

    interval: Duration = Field(default=10.0, gt=0)
    consecutive_failures: int | None = Field(default=5, ge=1)
    failure_percentage: Fraction | None = None
    success_rate_stdev_factor: float | None = Field(default=None, gt=0)
    request_volume: int = Field(default=100, ge=1)
    minimum_hosts: int = Field(default=3, ge=2)
    slow_threshold: Duration | None = Field(default=None, gt=0)
    base_ejection_time: Duration = Field(default=30.0, gt=0)
    max_ejection_time: Duration = Field(default=300.0, gt=0)
    max_ejection_percent: Fraction = 0.1


# -- end issue 14 --------------------------------------------------------------------------


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
    # -- issue 14 (model): load-balancing policy across zones ----------------------------
    #: How the load balancer picks a healthy zone for each attempt: ``random`` (uniform),
    #: ``round_robin``, ``least_outstanding`` (fewest attempts in flight in the zone, ties
    #: at random) or ``power_of_two`` (two distinct zones at random, the less loaded).
    routing: Literal["random", "round_robin", "least_outstanding", "power_of_two"] = "random"
    #: Passive outlier detection (as Envoy's): ``null`` = off, zones are judged by the
    #: up/down probes of ``health_check`` only.
    outlier_detection: OutlierDetection | None = None
    # -- end issue 14 ----------------------------------------------------------------------


# -- issue 14 (model): autoscaling ---------------------------------------------------------


class Autoscaling(Strict):
    """Target tracking for a worker pool, per zone (as ECS/EKS target tracking does).

    Every ``interval`` the zone's pool is judged on ``metric``: ``utilization`` (busy
    workers over workers, averaged over the interval from one sample a second) or
    ``queue_length`` (jobs in the station, queued and in service, per worker, same
    sampling). The desired size is ``ceil(workers × metric / target)`` within
    ``[min_per_zone, max_per_zone]``. A scale-out starts the missing workers at once;
    each serves after its own ``scale_out_delay`` (e.g. a Fargate task's start), and
    workers still starting count as workers for the next decision. A scale-in removes
    workers at once (work in service finishes), only when nothing is starting and
    ``scale_in_cooldown`` has passed since the last scaling action.
    """

    metric: Literal["utilization", "queue_length"] = "utilization"
    target: Quantity = Field(gt=0)
    interval: Duration = Field(default=60.0, gt=0)
    scale_out_delay: Distribution = Constant.of("60s")
    scale_in_cooldown: Duration = Field(default=300.0, ge=0)
    min_per_zone: int = Field(default=1, ge=0)
    max_per_zone: int = Field(ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> "Autoscaling":
        if self.min_per_zone > self.max_per_zone:
            raise ValueError("min_per_zone must not exceed max_per_zone")
        return self


# -- end issue 14 --------------------------------------------------------------------------


class Engine(Strict):
    """The query engine: a worker pool per zone serving a version of the software."""

    workers_per_zone: int = Field(default=8, ge=1)
    service_time: Distribution
    queue_limit: int | None = Field(default=None, ge=0)
    #: Skip queued work whose client has already timed out (deadline propagation).
    drop_expired: bool = False
    version: str = "v1"
    #: Extra engine (control-plane) CPU a cache miss costs before the connector fetch:
    #: planning the pushdown and building the SaaS request. ``null``: none.
    miss_service_time: Distribution | None = None
    #: Issue 14: target-tracking autoscaling of the pool (``null``: fixed size).
    autoscaling: Autoscaling | None = None


class Cache(Strict):
    """The regional Redis result cache, sharded over ``nodes_per_zone`` nodes in each zone."""

    enabled: bool = True
    ttl: Duration = Field(default=300.0, gt=0)
    latency: Distribution = Constant.of("1ms")
    #: Distinct result keys per tenant and connector object, drawn by Zipf popularity.
    keys: int = Field(default=1000, ge=1)
    zipf_s: float = Field(default=1.0, ge=0)
    nodes_per_zone: int = Field(default=1, ge=1)
    #: When a zone's nodes are lost, their shards fail over to nodes in other zones
    #: after this long; with ``replicas`` the data survives, otherwise they come back cold.
    failover_time: Duration = 30.0
    replicas: bool = True
    #: Keys one node holds (memory); when full, the key nearest expiry is evicted
    #: (Redis ``volatile-ttl``). ``null``: every key fits.
    max_keys_per_node: int | None = Field(default=None, ge=1)


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
    #: Issue 14: target-tracking autoscaling of the pool (``null``: fixed size).
    autoscaling: Autoscaling | None = None


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
    reject_latency: Distribution = Constant.of("20ms")
    objects: tuple[Name, ...] = Field(min_length=1)
    rate_limit: RateLimit = RateLimit()
    error_rate: Fraction = 0.0
    # -- issue 14 (model): provider load -------------------------------------------------
    #: Above this many admitted calls in flight, a new call's latency is multiplied by
    #: (calls in flight + 1) / concurrency (``null``: latency independent of load).
    concurrency: int | None = Field(default=None, ge=1)
    # -- end issue 14 ----------------------------------------------------------------------


class Metadata(Strict):
    """PostgreSQL metadata: a primary and an asynchronous replica in another zone."""

    primary_zone: str | None = None
    replica_zone: str | None = None
    replication_lag: Distribution = Constant.of("1s")
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


# -- issue 14 (model): closed-loop users ---------------------------------------------------


class ClosedLoop(Strict):
    """The tenant's ``users`` wait for their answers: each of a user's ``in_flight``
    sessions sends a query, waits for its final outcome (retries included), thinks for
    ``think_time`` and sends the next. With ``patience`` a user gives up waiting after
    that long and thinks, then sends the next query (the abandoned query still runs to its
    end). The tenant's ``rate`` and ``arrivals`` are then ignored."""

    think_time: Distribution
    in_flight: int = Field(default=1, ge=1)
    patience: Duration | None = Field(default=None, gt=0)


# -- end issue 14 --------------------------------------------------------------------------


class Tenant(Strict):
    """A tenant's open-loop query stream and its mix over ``connector.object`` targets."""

    rate: Rate
    users: int = Field(default=10, ge=1)
    mix: dict[str, Fraction] = Field(min_length=1)
    #: ``poisson`` (open loop, the default) or ``deterministic`` (evenly spaced: for
    #: exact-timeline tests and D/x/c textbook checks).
    arrivals: Literal["poisson", "deterministic"] = "poisson"
    #: Issue 14: closed-loop users instead of the open-loop stream (``null``: open loop).
    closed_loop: ClosedLoop | None = None

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


class RegionLoss(_Fault):
    """The whole primary region is lost (every zone); the ``failover:`` block says how the
    secondary region takes over. ``blackhole``: clients still resolving the old region
    hang until they time out instead of failing fast."""

    kind: Literal["region_loss"]
    blackhole: bool = False


# -- issue 14 (model): gray failures ---------------------------------------------------


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


# -- end issue 14 --------------------------------------------------------------------------


Fault = Annotated[
    Union[AzLoss, ProviderOutage, LatencyInjection, TrafficSurge, CacheFlush, TokenRevocation,
          RegionLoss, GrayFailure],
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- checks


class CheckSpec(Strict):
    """One check: ``{metric: latency_p95, op: "<=", value: 1.5s}`` (see :mod:`labcore.checks`)."""

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
    #: Releases and regional failover (defined at the end of this module).
    release: "Release | None" = None
    failover: "Failover | None" = None
    resilience: "ResiliencePolicy" = Field(default_factory=lambda: ResiliencePolicy())
    #: Runbook actions (issue 3, defined at the end of this module).
    mitigations: "tuple[Mitigation, ...]" = ()

    @model_validator(mode="after")
    def _references(self) -> "Scenario":
        # Errors start with the field path so that the loader can point at its line.
        topo, tenants = self.topology, self.workload.tenants
        for name, tenant in tenants.items():
            for target in tenant.mix:
                connector, obj = target.split(".")
                provider = topo.providers.get(connector)
                where = f"workload.tenants.{name}.mix"
                if provider is None:
                    raise ValueError(f"{where}: unknown connector {connector!r} in {target!r}")
                if obj not in provider.objects:
                    raise ValueError(f"{where}: {connector} has no object {obj!r}")
        for i, cap in enumerate(topo.gateway.user_caps):
            if cap.tenant not in tenants:
                raise ValueError(f"topology.gateway.user_caps.{i}: unknown tenant {cap.tenant!r}")
        for i, fault in enumerate(self.faults):
            try:
                _check_fault(fault, self)
            except ValueError as exc:
                raise ValueError(f"faults.{i}: {exc}") from None
        _check_outlier_detection(self)  # issue 14
        return self

    @model_validator(mode="after")
    def _release_and_failover(self) -> "Scenario":
        _check_release_and_failover(self)
        return self

    @model_validator(mode="after")
    def _mitigation_references(self) -> "Scenario":
        for i, mitigation in enumerate(self.mitigations):
            _check_mitigation(mitigation, self, f"mitigations.{i}")
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
    if isinstance(fault, GrayFailure):  # issue 14
        _check_gray_failure(fault, scenario)


def _check_gray_failure(fault: GrayFailure, scenario: Scenario) -> None:
    topo = scenario.topology
    if fault.tier == "gateway" and topo.gateway.workers_per_zone == 0:
        raise ValueError("gray_failure: tier gateway has no workers (workers_per_zone: 0)")
    if fault.tier == "connector" and not topo.connectors.enabled:
        raise ValueError("gray_failure: tier connector is disabled")
    if scenario.release is not None:
        raise ValueError("gray_failure cannot be combined with a release (both wrap the "
                         "engine's service)")


def _check_outlier_detection(scenario: Scenario) -> None:
    if scenario.topology.gateway.outlier_detection is not None and scenario.release is not None:
        raise ValueError("topology.gateway.outlier_detection cannot be combined with a release "
                         "(both watch the client's outcomes)")


# --------------------------------------------------------------------------- releases, failover
# Issue 4: canary and blue-green releases (sim.model.release), regional failover
# (sim.model.region) and the resilience policy of the report (sim.resilience).

#: What the secondary region needs besides its own data plane.
Dependency = Literal["metadata", "kms_keys", "connector_secrets"]
DEPENDENCIES: tuple[Dependency, ...] = ("metadata", "kms_keys", "connector_secrets")


class NewVersion(Strict):
    """How the released version really behaves (the truth the canary analysis must find)."""

    #: Extra share of the queries it serves that fail (an engine 5xx, ``unavailable``).
    error_rate: Fraction = 0.0
    #: Multiplies its engine service time.
    latency_factor: float = Field(default=1.0, gt=0)
    #: Extra error rate added per minute since deployment (a slow leak).
    degradation: Fraction = 0.0

    @property
    def bad(self) -> bool:
        """A version that behaves worse in any way; a rollback of any other is false."""
        return self.error_rate > 0 or self.degradation > 0 or self.latency_factor > 1.0


class CanaryAnalysis(Strict):
    """The automated judge: one verdict per window of canary and baseline attempts."""

    window: Duration = Field(default=60.0, gt=0)
    #: Passing windows needed at a step before the next step.
    windows_per_step: int = Field(default=3, ge=1)
    #: Consecutive failing windows that trigger the rollback.
    failing_windows: int = Field(default=2, ge=1)
    #: A window with fewer canary attempts is inconclusive (neither passes nor fails).
    min_samples: int = Field(default=100, ge=1)
    #: The guide's "error rates increase by >0.5%": points by default, or relative.
    error_increase: Fraction = 0.005
    error_reading: Literal["points", "relative"] = "points"
    latency_p95: Duration = 1.5
    #: Also fail a window when a one-sided Mann-Whitney U test finds the canary's
    #: latencies larger than the baseline's at ``confidence`` (Kayenta's judge).
    mann_whitney: bool = False
    confidence: Fraction = 0.98


class Canary(Strict):
    """A new engine version takes a growing share of traffic while the analysis watches."""

    kind: Literal["canary"]
    at: Duration
    version: str
    new_version: NewVersion = NewVersion()
    steps: tuple[Fraction, ...] = (0.05, 0.25, 0.5, 1.0)
    analysis: CanaryAnalysis = CanaryAnalysis()

    @model_validator(mode="after")
    def _steps(self) -> "Canary":
        steps = list(self.steps)
        if not steps or steps[-1] != 1.0 or any(s <= 0 for s in steps):
            raise ValueError("steps must be positive and end at 100%")
        if steps != sorted(set(steps)):
            raise ValueError("steps must increase")
        return self


class BlueGreen(Strict):
    """A control-plane cutover: new attempts go to green at ``at``; blue drains its
    in-flight work for ``drain_timeout`` and is then torn down."""

    kind: Literal["blue_green"]
    at: Duration
    version: str
    drain_timeout: Duration


Release = Annotated[Union[Canary, BlueGreen], Field(discriminator="kind")]


class MetadataReplication(Strict):
    """How metadata reaches the secondary region: streaming (RPO = the lag at the loss),
    or a snapshot / log shipping every ``interval`` (RPO = time since the last one)."""

    mode: Literal["async", "snapshot", "log_shipping"] = "async"
    lag: Distribution = Constant.of("1s")  # type: ignore[arg-type]  # parsed
    interval: Duration = Field(default=300.0, gt=0)


class Failover(Strict):
    """The regional failover timeline after a ``region_loss`` fault."""

    #: Alarm delay: from the loss to a page.
    detection: Distribution = Constant.of("2m")  # type: ignore[arg-type]
    #: From the page to the decision to fail over.
    decision: Distribution = Constant.of("3m")  # type: ignore[arg-type]
    #: Infrastructure as code bringing the data plane up in the secondary region.
    spinup: Distribution = Constant.of("5m")  # type: ignore[arg-type]
    #: DNS TTL: clients move to the new region evenly over this long.
    dns_ttl: Duration = 60.0
    #: Dependencies replicated to the secondary region; a missing one shows after failover.
    replicated: tuple[Dependency, ...] = DEPENDENCIES
    metadata: MetadataReplication = MetadataReplication()


class RecoveryTarget(Strict):
    rto: Duration = 900.0
    rpo: Duration = 300.0


class ResiliencePolicy(Strict):
    """RTO and RPO targets per disruption type (the guide's 15 min and 5 min by default);
    ``null`` for a type reports MissingPolicy."""

    software: RecoveryTarget | None = RecoveryTarget()
    hardware: RecoveryTarget | None = RecoveryTarget()
    az: RecoveryTarget | None = RecoveryTarget()
    region: RecoveryTarget | None = RecoveryTarget()


def _check_release_and_failover(scenario: Scenario) -> None:
    release = scenario.release
    if release is not None and release.at >= scenario.run.duration:
        raise ValueError(f"release: {release.kind} at {release.at:g}s starts after the run ends")
    if isinstance(release, Canary) and release.analysis.window > scenario.run.duration:
        raise ValueError("release.analysis.window: longer than the run")
    losses = [f for f in scenario.faults if isinstance(f, RegionLoss)]
    if losses and scenario.failover is None:
        raise ValueError("failover: a region_loss fault needs a failover block")
    if len(losses) > 1:
        raise ValueError("faults: at most one region_loss per run")



# --------------------------------------------------------------------------- mitigations
# Issue 3: the runbooks' actions (SOP-101/102/103), acted out by sim.model.mitigations.
# Placed before the final ``Scenario.model_rebuild()``, which resolves both blocks.


class _Mitigation(Strict):
    """When an action takes effect: from the start (default), at ``at``, or
    ``operator_delay`` after fault ``after_fault`` (its index in ``faults``) starts: the
    time to notice it on a dashboard and act."""

    at: Duration | None = None
    after_fault: int | None = Field(default=None, ge=0)
    operator_delay: Duration = 0.0

    @model_validator(mode="after")
    def _when(self) -> "_Mitigation":
        if self.at is not None and self.after_fault is not None:
            raise ValueError("give either at or after_fault, not both")
        if self.operator_delay and self.after_fault is None:
            raise ValueError("operator_delay needs after_fault")
        return self

    def start(self, faults: tuple[Any, ...]) -> float:
        """When the action is applied, in simulated seconds."""
        if self.after_fault is not None:
            return float(faults[self.after_fault].at + self.operator_delay)
        return self.at or 0.0


class UserCapMitigation(_Mitigation):
    """SOP-101: a per-user concurrency cap pushed to the policy store (OPA)."""

    kind: Literal["user_cap"]
    tenant: Name
    user: str = "*"
    max_concurrency: int = Field(ge=0)
    #: The cap is temporary: lifted this long after it was applied (``null``: kept).
    duration: Duration | None = Field(default=None, gt=0)


class SoftCache(_Mitigation):
    """SOP-102: serve an expired entry (up to ``max_stale`` past its TTL) while one
    refresh runs; invalidations then mark entries stale instead of deleting them."""

    kind: Literal["soft_cache"]
    max_stale: Duration = Field(default=3600.0, gt=0)


class Coalescing(_Mitigation):
    """One connector fetch per key in flight; other misses on the key wait for it."""

    kind: Literal["coalescing"]


class XFetch(_Mitigation):
    """Probabilistic early refresh: a hit refreshes in the background when
    ``now - delta * beta * ln(U) >= expiry`` (delta: the key's last fetch time)."""

    kind: Literal["xfetch"]
    beta: float = Field(default=1.0, ge=0)
    #: Issue 14: ``false`` drops the lock: every hit that draws an early refresh starts
    #: one, even with one in flight for the key (duplicate recomputations).
    single_flight: bool = True


class CacheScale(_Mitigation):
    """SOP-102: more cache nodes, in service ``provisioning_time`` after the change is
    applied (a Terraform apply and the nodes joining the cluster)."""

    kind: Literal["cache_scale"]
    nodes_per_zone: int = Field(ge=1)
    provisioning_time: Duration = 600.0


class TokenRefresh(_Mitigation):
    """SOP-103: a bulk token-refresh job, limited by the provider's token endpoint.

    Each tenant holds ``tokens_per_tenant`` OAuth tokens with the provider (per user or
    per integration); a tenant's calls fail with 401 in proportion to its tokens not yet
    refreshed. With ``rotate_secret`` the provider-level client secret is rotated first
    (``rotation_time``), which invalidates every tenant's tokens, revoked or not."""

    kind: Literal["token_refresh"]
    provider: Name
    rate: Rate = Field(gt=0)
    tokens_per_tenant: int = Field(default=1, ge=1)
    rotate_secret: bool = False
    rotation_time: Duration = 60.0


class RetryPolicy(_Mitigation):
    """A client config push: a new retry budget and/or backoff strategy."""

    kind: Literal["retry_policy"]
    budget: Fraction | None = None
    backoff: Literal["none", "exponential", "full_jitter", "equal_jitter",
                     "decorrelated_jitter"] | None = None
    max_attempts: int | None = Field(default=None, ge=1)


Mitigation = Annotated[
    Union[UserCapMitigation, SoftCache, Coalescing, XFetch, CacheScale, TokenRefresh,
          RetryPolicy],
    Field(discriminator="kind"),
]


def _check_mitigation(mitigation: Any, scenario: Scenario, where: str) -> None:
    faults = scenario.faults
    if mitigation.after_fault is not None and mitigation.after_fault >= len(faults):
        raise ValueError(f"{where}.after_fault: no fault {mitigation.after_fault} "
                         f"(the scenario has {len(faults)})")
    if mitigation.start(faults) >= scenario.run.duration:
        raise ValueError(f"{where}: {mitigation.kind} starts after the run ends")
    tenant = getattr(mitigation, "tenant", None)
    if tenant is not None and tenant not in scenario.workload.tenants:
        raise ValueError(f"{where}.tenant: unknown tenant {tenant!r}")
    provider = getattr(mitigation, "provider", None)
    if provider is not None and provider not in scenario.topology.providers:
        raise ValueError(f"{where}.provider: unknown provider {provider!r}")
    if mitigation.kind in ("soft_cache", "coalescing", "xfetch") and not (
        scenario.topology.cache.enabled and scenario.topology.connectors.enabled
    ):
        raise ValueError(f"{where}: {mitigation.kind} needs the cache and the connectors")


Scenario.model_rebuild()
