"""A mock provider's configured behaviour: latency, rate limits, errors (``sandbox.standin``).

The scenario's ``topology.providers.NAME`` made real: an admitted call takes a latency
drawn from the scenario's distribution, a refused one (429, 401, outage) its
``reject_latency``; a share ``error_rate`` of admitted calls answers 500; a call needs a
token from the tenant's bucket *and* from the app-wide bucket (both optional), as the
simulator's provider does, and a refusal carries the scenario's ``retry_after``. Draws come
from named numpy / ``random`` streams seeded like the simulator's
(``provider.NAME.latency``, ``provider.NAME.reject``, ``provider.NAME.errors``), so one
configuration always gives the same sequence of latencies.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from labcore.distributions import Distribution, Sampler
from sandbox.errors import ApiError
from sandbox.ratelimit import TokenBucket
from sandbox.sections import number
from sandbox.standin import derive_seed

__all__ = ["ProviderSettings", "parse_distribution", "parse_provider_section"]

_DIST: TypeAdapter[Any] = TypeAdapter(Distribution)
_LIMIT_FIELDS = {"per_tenant", "per_tenant_burst", "app", "app_burst", "retry_after_seconds"}
_FIELDS = {"latency", "reject_latency", "error_rate", "seed", "rate_limit"}


def _bad(message: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message)


def _dist(value: Any, where: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("dist") == "empirical":
        raise _bad(f"{where} must be a distribution object (constant, exponential, "
                   "lognormal or uniform)")
    # The configuration carries seconds as numbers; the schema wants units on durations.
    with_units = {k: (f"{v!r}s" if k != "dist" and isinstance(v, (int, float))
                      and not isinstance(v, bool) else v) for k, v in value.items()}
    try:
        return _DIST.validate_python(with_units)
    except ValidationError as exc:
        raise _bad(f"{where}: {exc.errors()[0]['msg']}") from None


#: A distribution of a stand-in section (seconds as numbers); 400 naming ``where``.
parse_distribution = _dist


def _limits(body: Any) -> dict[str, float | None]:
    if not isinstance(body, dict) or set(body) != _LIMIT_FIELDS:
        raise _bad(f"rate_limit must have exactly the fields {sorted(_LIMIT_FIELDS)}")
    return {k: number(body[k], f"rate_limit.{k}", 0.0, 1e6, optional=True) for k in body}


def parse_provider_section(body: Any) -> dict[str, Any]:
    """Validate one provider's section; 400 naming the field otherwise."""
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise _bad(f"a provider section has exactly the fields {sorted(_FIELDS)}")
    seed = body["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _bad("seed must be a non-negative integer")
    rate = body["error_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise _bad("error_rate must be a number in [0, 1]")
    _dist(body["latency"], "latency")
    _dist(body["reject_latency"], "reject_latency")
    return {**body, "error_rate": float(rate), "rate_limit": _limits(body["rate_limit"])}


@dataclass
class ProviderSettings:
    """One provider's samplers and buckets, built from its (validated) section."""

    name: str
    section: dict[str, Any]
    latency: Sampler = field(init=False)
    reject: Sampler = field(init=False)
    errors: random.Random = field(init=False)
    tenant_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    app_bucket: TokenBucket | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        seed, name = int(self.section["seed"]), self.name
        latency = _dist(self.section["latency"], "latency")
        reject = _dist(self.section["reject_latency"], "reject_latency")
        self.latency = latency.sampler(
            np.random.default_rng(derive_seed(seed, "numpy", f"provider.{name}.latency")))
        self.reject = (reject or latency).sampler(
            np.random.default_rng(derive_seed(seed, "numpy", f"provider.{name}.reject")))
        self.errors = random.Random(derive_seed(seed, f"provider.{name}.errors"))
        limit = self.section["rate_limit"]
        app = limit["app"]
        if app is not None:
            self.app_bucket = TokenBucket(app, limit["app_burst"] or max(1.0, app))

    def _tenant_bucket(self, tenant: str, harder: float | None) -> TokenBucket | None:
        limit = self.section["rate_limit"]
        rate = harder or limit["per_tenant"]
        if rate is None:
            return None
        if tenant not in self.tenant_buckets:
            burst = max(1.0, rate) if harder else (limit["per_tenant_burst"] or max(1.0, rate))
            self.tenant_buckets[tenant] = TokenBucket(rate, burst)
        return self.tenant_buckets[tenant]

    def admit(self, tenant: str, harder: float | None = None) -> float:
        """0.0 when both buckets grant a token; else the Retry-After to answer (the
        scenario's ``retry_after``, or the bucket's own wait without one)."""
        bucket = self._tenant_bucket(tenant, harder)
        waits = [b.wait() for b in (bucket, self.app_bucket) if b is not None]
        if any(w > 0 for w in waits):
            fixed = self.section["rate_limit"]["retry_after_seconds"]
            return float(fixed) if fixed is not None else max(waits)
        for b in (bucket, self.app_bucket):
            if b is not None:
                b.take()
        return 0.0

    def failed(self) -> bool:
        """Whether an admitted call answers 500 (the scenario's ``error_rate``)."""
        rate = float(self.section["error_rate"])
        return rate > 0 and self.errors.random() < rate
