"""Releases (canary, blue-green), regional failover and the resilience policy.

Acted out by ``sim.model.release`` and ``sim.model.region``; the policy is read by
``sim.resilience``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from ..distributions import Constant, Distribution
from .base import Duration, Fraction, Strict
from .faults import RegionLoss

__all__ = [
    "BlueGreen", "Canary", "CanaryAnalysis", "DEPENDENCIES", "Dependency", "Failover",
    "MetadataReplication", "NewVersion", "RecoveryTarget", "Release", "ResiliencePolicy",
    "check_release_and_failover",
]


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


def check_release_and_failover(scenario: Any) -> None:
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
