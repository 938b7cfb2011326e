"""Third-party SaaS providers: latency, token-bucket rate limits, OAuth tokens, outages.

Rate limits are token buckets refilled lazily at call time (no events): one per tenant
and one for the whole OmniSQL app, as SaaS APIs commonly enforce both. A call needs a
token from each; otherwise it is answered 429 with the provider's Retry-After.

OAuth tokens: ``revoked[tenant]`` is the fraction of the tenant's tokens that are no
longer valid; a call is answered 401 with that probability (1.0: every call). A bulk
refresh job (SOP-103) brings the fraction down token by token.

With ``concurrency`` (issue 14, opt-in) the provider slows down under OmniSQL's own load:
a call admitted while ``n`` others are in flight takes ``max(1, (n + 1) / concurrency)``
times its drawn latency, fixed when it starts (like processor sharing frozen at the
call's start). Calls a connector gave up on still load the provider until they end.
"""

from __future__ import annotations

from heapq import heappop, heappush

from labcore.scenario import Provider as ProviderSpec

from ..kernel import Streams
from .request import OK, PROVIDER_ERROR, RATE_LIMITED, UNAUTHORIZED

__all__ = ["Provider", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; refilled when asked."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, 0.0

    def take(self, now: float) -> bool:
        tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def peek(self, now: float) -> bool:
        return min(self.burst, self.tokens + (now - self.last) * self.rate) >= 1.0


class Provider:
    """One SaaS API as the connectors see it."""

    def __init__(self, name: str, spec: ProviderSpec, n_tenants: int, streams: Streams) -> None:
        self.name = name
        self.latency = spec.latency.sampler(streams.numpy(f"provider.{name}.latency"))
        self.reject_latency = spec.reject_latency.sampler(streams.numpy(f"provider.{name}.reject"))
        self.errors = streams.get(f"provider.{name}.errors")
        self.error_rate = spec.error_rate
        self.retry_after = spec.rate_limit.retry_after
        self.factor = 1.0
        self.outage = False
        self.revoked = [0.0] * n_tenants
        self.auth = streams.get(f"provider.{name}.auth")
        limit = spec.rate_limit
        self.tenant_buckets: list[TokenBucket] | None = None
        if limit.per_tenant is not None:
            burst = limit.per_tenant_burst or max(1.0, limit.per_tenant)
            self.tenant_buckets = [TokenBucket(limit.per_tenant, burst) for _ in range(n_tenants)]
        self.app_bucket: TokenBucket | None = None
        if limit.app is not None:
            self.app_bucket = TokenBucket(limit.app, limit.app_burst or max(1.0, limit.app))
        self.concurrency = spec.concurrency
        self.ends: list[float] = []  # when the admitted calls in flight end (a heap)

    def call(self, tenant: int, now: float) -> tuple[int, float]:
        """The outcome of one API call made now, and how long it takes to answer."""
        if self.outage:
            return PROVIDER_ERROR, self.reject_latency()
        revoked = self.revoked[tenant]
        if revoked and (revoked >= 1.0 or self.auth.random() < revoked):
            return UNAUTHORIZED, self.reject_latency()
        if not self._admit(tenant, now):
            return RATE_LIMITED, self.reject_latency()
        latency = self.latency() * self.factor
        if self.concurrency is not None:  # refused calls above put no load on it
            latency = self._loaded(latency, now)
        if self.error_rate and self.errors.random() < self.error_rate:
            return PROVIDER_ERROR, latency
        return OK, latency

    def _loaded(self, latency: float, now: float) -> float:
        """An answered call's latency, slowed by the calls in flight (see the module
        docstring); it joins them. Draws nothing, so it may run before the error draw."""
        ends = self.ends
        while ends and ends[0] <= now:
            heappop(ends)
        latency *= max(1.0, (len(ends) + 1) / self.concurrency)  # type: ignore[operator]
        heappush(ends, now + latency)
        return latency

    def _admit(self, tenant: int, now: float) -> bool:
        tenant_bucket = self.tenant_buckets[tenant] if self.tenant_buckets else None
        app = self.app_bucket
        # Take from both or neither: a call refused by one bucket spends nothing.
        if tenant_bucket is not None and not tenant_bucket.peek(now):
            return False
        if app is not None and not app.take(now):
            return False
        return tenant_bucket is None or tenant_bucket.take(now)

    # -- narrow methods for faults and mitigations --------------------------------------

    def revoke(self, tenants: list[int], fraction: float = 1.0) -> None:
        """Invalidate ``fraction`` of each tenant's tokens (all of them by default)."""
        for tenant in tenants:
            self.revoked[tenant] = max(self.revoked[tenant], fraction)

    def refresh(self, tenant: int, fraction: float = 1.0) -> None:
        """New tokens for ``fraction`` of the tenant's tokens (all of them by default)."""
        self.revoked[tenant] = max(0.0, self.revoked[tenant] - fraction)
        if self.revoked[tenant] < 1e-9:
            self.revoked[tenant] = 0.0
