"""A connector's own counters, per second: fetches, provider calls, distinct keys.

The simulator's ``connector.fetches_per_key`` (and ``calls_per_key``) divide the fetches
(and provider calls) of a window by the distinct keys fetched in it, counted when a
fetch arrives, called or not; the real runners need
the same figures from the stand-in, over the windows they measure. Each connector keeps one
bin per second (an hour of them, as the gateway's stats do) with its counts and the set of
keys it fetched (as 32-bit hashes; at most ``MAX_KEYS_PER_SECOND`` per bin, so a flood of
distinct keys cannot grow memory without bound: past that the distinct count is a lower
bound). The admin service adds the connectors' counts and unites their key sets, so a key
fetched in two zones counts once, as in the simulator.
"""

from __future__ import annotations

import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FetchStats", "merge_windows"]

MAX_SECONDS = 3600
MAX_KEYS_PER_SECOND = 5000


@dataclass
class _Bin:
    fetches: int = 0
    calls: int = 0
    timeouts: int = 0
    rate_limited: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unauthorized: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    keys: set[int] = field(default_factory=set)


@dataclass
class FetchStats:
    """Per-second bins of one connector's fetches and provider calls."""

    bins: dict[int, _Bin] = field(default_factory=dict)

    def _bin(self) -> _Bin:
        now = int(time.time())
        current = self.bins.get(now)
        if current is None:
            current = self.bins[now] = _Bin()
            for old in [s for s in self.bins if s <= now - MAX_SECONDS]:
                del self.bins[old]
        return current

    def fetch(self, key: str) -> None:
        """One fetch handed to this connector for ``key`` (tenant and query)."""
        current = self._bin()
        current.fetches += 1
        if len(current.keys) < MAX_KEYS_PER_SECOND:
            current.keys.add(zlib.crc32(key.encode()))

    def call(self, tenant: str, status: int | None) -> None:
        """One provider call and its answer (``None``: it timed out)."""
        current = self._bin()
        current.calls += 1
        if status is None:
            current.timeouts += 1
        elif status == 429:
            current.rate_limited[tenant] += 1
        elif status == 401:
            current.unauthorized[tenant] += 1

    def window(self, seconds: float) -> dict[str, Any]:
        """Counts over the last ``seconds`` (whole seconds, the current one included)."""
        since = int(time.time()) - max(1, int(seconds)) + 1
        chosen = [b for s, b in self.bins.items() if s >= since]
        keys: set[int] = set().union(*(b.keys for b in chosen)) if chosen else set()
        return {"fetches": sum(b.fetches for b in chosen), "calls": sum(b.calls for b in chosen),
                "timeouts": sum(b.timeouts for b in chosen),
                "rate_limited": _add(b.rate_limited for b in chosen),
                "unauthorized": _add(b.unauthorized for b in chosen), "keys": sorted(keys)}


def _add(parts: Any) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for part in parts:
        for name, n in part.items():
            total[name] += n
    return dict(total)


def merge_windows(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The connectors' windows as one: counts added, key sets united, ratios derived
    (``null`` with no key fetched)."""
    keys = set().union(*(set(w["keys"]) for w in windows)) if windows else set()
    fetches, calls = sum(w["fetches"] for w in windows), sum(w["calls"] for w in windows)
    return {"fetches": fetches, "calls": calls, "keys": len(keys),
            "fetches_per_key": fetches / len(keys) if keys else None,
            "calls_per_key": calls / len(keys) if keys else None,
            "timeouts": sum(w["timeouts"] for w in windows),
            "rate_limited": _add(w["rate_limited"] for w in windows),
            "unauthorized": _add(w["unauthorized"] for w in windows)}
