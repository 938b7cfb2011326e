"""The system's shape: zones, gateway, engine, cache, connectors, providers, metadata."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..distributions import Constant, Distribution
from .base import (
    RETRIABLE_OUTCOMES,
    Duration,
    Fraction,
    Name,
    Quantity,
    Rate,
    RetryOutcome,
    Strict,
)

__all__ = [
    "Autoscaling", "Cache", "ConnectorRetries", "Connectors", "ControlPlane", "Engine",
    "Gateway", "HealthCheck", "Metadata", "OutlierDetection", "Provider", "RateLimit", "Retries",
    "Topology", "UserCap",
]


class HealthCheck(Strict):
    """The load balancer's view of a zone: detection takes between (failure_threshold - 1) ×
    interval and failure_threshold × interval (the probes' phase is random per run)."""

    interval: Duration = Field(default=10.0, gt=0)
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=2, ge=1)


#: A client's backoff between attempts (:class:`labcore.retries.Backoff`).
BackoffStrategy = Literal["none", "exponential", "full_jitter", "equal_jitter",
                          "decorrelated_jitter"]


class Retries(Strict):
    """Client-side retries of a whole query, with backoff and an optional retry budget."""

    max_attempts: int = Field(default=1, ge=1)
    backoff: BackoffStrategy = "exponential"
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
    #: How the load balancer picks a healthy zone for each attempt: ``random`` (uniform),
    #: ``round_robin``, ``least_outstanding`` (fewest attempts in flight in the zone, ties
    #: at random) or ``power_of_two`` (two distinct zones at random, the less loaded).
    routing: Literal["random", "round_robin", "least_outstanding", "power_of_two"] = "random"
    #: Passive outlier detection (as Envoy's): ``null`` = off, zones are judged by the
    #: up/down probes of ``health_check`` only.
    outlier_detection: OutlierDetection | None = None


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
    #: Target-tracking autoscaling of the pool (``null``: fixed size).
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
    #: Target-tracking autoscaling of the pool (``null``: fixed size).
    autoscaling: Autoscaling | None = None


class ControlPlane(Strict):
    """Policy evaluation and token lookups on the connector path, a worker pool per zone.

    Every fetch (a cache miss, or a background refresh) holds one control-plane worker
    for ``policy_time`` + ``token_lookup_time`` (OPA-style per-user policy checks, then
    the tenant's SaaS token from the secret store) before it queues for a connector.
    ``null`` in the topology: no such tier (misses go straight to the connectors).
    """

    workers_per_zone: int = Field(default=4, ge=1)
    policy_time: Distribution = Constant.of("2ms")
    token_lookup_time: Distribution = Constant.of("1ms")
    queue_limit: int | None = Field(default=None, ge=0)


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
    #: Above this many admitted calls in flight, a new call's latency is multiplied by
    #: (calls in flight + 1) / concurrency (``null``: latency independent of load).
    concurrency: int | None = Field(default=None, ge=1)

    def added_latency_ms(self, factor: float) -> float:
        """What a real target adds to every call to slow this provider ``factor``-fold on
        average (a ``latency_injection``): (factor - 1) x its mean latency, in ms, never
        negative. The sandbox's fault API adds a constant, so the mean is the simulator's
        multiplied latency's, not its spread."""
        return max(0.0, (float(factor) - 1.0) * self.latency.mean * 1e3)


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
    #: The control-plane tier in front of the connectors (``null``: not modelled).
    control_plane: ControlPlane | None = None
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
