"""The runbooks' actions (SOP-101/102/103): mitigations on the incident's time axis.

Acted out by ``sim.model.mitigations``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from .base import Duration, Fraction, Name, Rate, Strict
from .topology import BackoffStrategy

__all__ = [
    "CacheScale", "Coalescing", "Mitigation", "RetryPolicy", "SoftCache", "TokenRefresh",
    "UserCapMitigation", "XFetch", "check_mitigation",
]


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
    #: ``false`` drops the lock: every hit that draws an early refresh starts one, even
    #: with one in flight for the key (duplicate recomputations).
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
    backoff: BackoffStrategy | None = None
    max_attempts: int | None = Field(default=None, ge=1)


Mitigation = Annotated[
    Union[UserCapMitigation, SoftCache, Coalescing, XFetch, CacheScale, TokenRefresh,
          RetryPolicy],
    Field(discriminator="kind"),
]


def check_mitigation(mitigation: Any, scenario: Any, where: str) -> None:
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
