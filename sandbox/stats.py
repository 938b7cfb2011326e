"""The gateway's sliding window of request facts, summarised for `/v1/stats`.

One compact tuple per request (facts in the hot path, metrics later); entries older than the
longest window anyone may ask for are dropped, so memory is bounded by traffic x one hour.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, NamedTuple

__all__ = ["MAX_WINDOW", "Fact", "StatsWindow"]

MAX_WINDOW = 3600.0


class Fact(NamedTuple):
    at: float
    status: int
    tenant: str
    latency: float
    detail: str  # for a 200 the cache result ("hit", "miss", "stale"), else the error code


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def _is_unauthorized(f: Fact) -> bool:
    return f.status == 401 or (f.detail == "PROVIDER_UNAUTHORIZED")


class StatsWindow:
    """Records facts and summarises any trailing window."""

    def __init__(self) -> None:
        self._facts: deque[Fact] = deque()

    def record(self, fact: Fact) -> None:
        self._facts.append(fact)
        horizon = fact.at - MAX_WINDOW
        while self._facts and self._facts[0].at < horizon:
            self._facts.popleft()

    def recent(self, window: float) -> list[Fact]:
        since = time.time() - window
        out: list[Fact] = []
        for fact in reversed(self._facts):
            if fact.at < since:
                break
            out.append(fact)
        return out

    def summary(self, window: float) -> dict[str, Any]:
        facts = self.recent(window)
        out = _summarise(facts)
        out["window_seconds"] = int(window) if float(window).is_integer() else window
        out["by_tenant"] = {
            t: {k: v for k, v in _summarise([f for f in facts if f.tenant == t]).items()
                if k in ("requests", "errors", "error_rate", "latency_p95", "rate_limited")}
            for t in sorted({f.tenant for f in facts if f.tenant})
        }
        return out


def _summarise(facts: list[Fact]) -> dict[str, Any]:
    latencies = sorted(f.latency for f in facts)
    errors = sum(1 for f in facts if f.status >= 400)
    ok = [f for f in facts if f.status == 200]
    by_status: dict[str, int] = {}
    for f in facts:
        by_status[str(f.status)] = by_status.get(str(f.status), 0) + 1
    return {
        "requests": len(facts),
        "errors": errors,
        "error_rate": errors / len(facts) if facts else 0.0,
        "latency_p50": _percentile(latencies, 0.50),
        "latency_p95": _percentile(latencies, 0.95),
        "latency_p99": _percentile(latencies, 0.99),
        "by_status": by_status,
        "cache_hit_ratio": (sum(1 for f in ok if f.detail in ("hit", "stale")) / len(ok)
                            if ok else None),
        "rate_limited": by_status.get("429", 0),
        "unauthorized": sum(1 for f in facts if _is_unauthorized(f)),
    }
