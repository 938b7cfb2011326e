"""The gateway's sliding window of request facts, summarised for `/v1/stats`.

Facts are folded into one bin per second and tenant as they arrive (status counts, cache and
auth counts, a log-bucket latency histogram), so memory is bounded by seconds x tenants, not by
traffic: an hour at 500 req/s costs the same as an hour at 5. Percentiles read from the
histogram are the upper bound of their bucket: at most 4 % above the true value.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["MAX_WINDOW", "Fact", "StatsWindow", "bucket_of", "bucket_value"]

MAX_WINDOW = 3600.0
_BASE = 1e-5  # seconds: the first bucket's upper bound
_GROWTH = 1.04  # each bucket is 4 % wider than the last


class Fact(NamedTuple):
    at: float
    status: int
    tenant: str
    latency: float
    detail: str  # for a 200 the cache result ("hit", "miss", "stale"), else the error code


def bucket_of(latency: float) -> int:
    if latency <= _BASE:
        return 0
    return math.ceil(math.log(latency / _BASE, _GROWTH) - 1e-9)


def bucket_value(index: int) -> float:
    return _BASE * _GROWTH**index


@dataclass(slots=True)
class _Bin:
    """One second of one tenant's traffic."""

    statuses: dict[int, int] = field(default_factory=dict)
    ok: int = 0
    cached: int = 0  # 200s served from cache (hit or stale)
    unauthorized: int = 0
    latency: dict[int, int] = field(default_factory=dict)

    def add(self, f: Fact) -> None:
        self.statuses[f.status] = self.statuses.get(f.status, 0) + 1
        if f.status == 200:
            self.ok += 1
            self.cached += f.detail in ("hit", "stale")
        self.unauthorized += f.status == 401 or f.detail == "PROVIDER_UNAUTHORIZED"
        b = bucket_of(f.latency)
        self.latency[b] = self.latency.get(b, 0) + 1

    def merge(self, other: _Bin) -> None:
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v
        for k, v in other.latency.items():
            self.latency[k] = self.latency.get(k, 0) + v
        self.ok += other.ok
        self.cached += other.cached
        self.unauthorized += other.unauthorized


def _percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0  # nearest rank
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return bucket_value(index)
    return None  # unreachable: seen ends at total >= rank


def _slower_than(hist: dict[int, int], latency: float) -> int:
    """Requests whose latency reads above ``latency``: by the bucket's upper bound, the value
    :func:`_percentile` reads, so the P95 is above ``latency`` exactly when more than 5 % are."""
    return sum(n for index, n in hist.items() if bucket_value(index) > latency)


def _summarise(b: _Bin, slow_above: float | None = None) -> dict[str, Any]:
    requests = sum(b.statuses.values())
    errors = sum(n for s, n in b.statuses.items() if s >= 400)
    slow = {} if slow_above is None else {"slow": _slower_than(b.latency, slow_above)}
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "latency_p50": _percentile(b.latency, 0.50),
        "latency_p95": _percentile(b.latency, 0.95),
        "latency_p99": _percentile(b.latency, 0.99),
        "by_status": {str(s): n for s, n in sorted(b.statuses.items())},
        "cache_hit_ratio": b.cached / b.ok if b.ok else None,
        "rate_limited": b.statuses.get(429, 0),
        "unauthorized": b.unauthorized,
        **slow,
    }


_TENANT_KEYS = ("requests", "errors", "error_rate", "latency_p95", "rate_limited", "slow")


class StatsWindow:
    """Records facts into per-second bins and summarises any trailing window."""

    def __init__(self) -> None:
        self._seconds: deque[tuple[int, dict[str, _Bin]]] = deque()

    def record(self, fact: Fact) -> None:
        second = int(fact.at)
        if not self._seconds or second > self._seconds[-1][0]:
            self._seconds.append((second, {}))
            while self._seconds[0][0] < second - MAX_WINDOW:
                self._seconds.popleft()
        # A fact stamped a little late (the clock of a slow request) joins the newest second.
        bins = self._seconds[-1][1]
        bins.setdefault(fact.tenant, _Bin()).add(fact)

    def summary(self, window: float, now: float | None = None,
                slow_above: float | None = None) -> dict[str, Any]:
        """The trailing ``window`` seconds; with ``slow_above`` (seconds), each scope also
        counts its requests slower than that (``slow``), for a test on the P95."""
        since = (time.time() if now is None else now) - window
        total, tenants = _Bin(), dict[str, _Bin]()
        for second, bins in reversed(self._seconds):
            if second + 1 <= since:
                break
            for tenant, b in bins.items():
                total.merge(b)
                tenants.setdefault(tenant, _Bin()).merge(b)
        out = _summarise(total, slow_above)
        out["window_seconds"] = int(window) if float(window).is_integer() else window
        if slow_above is not None:
            out["slow_above"] = slow_above
        out["by_tenant"] = {t: {k: v for k, v in _summarise(b, slow_above).items()
                                if k in _TENANT_KEYS}
                            for t, b in sorted(tenants.items()) if t}
        return out
