"""A circuit breaker for calls to a shared dependency (Redis).

`threshold` consecutive failures (default 2) open it for `open_seconds`: callers then skip
the dependency at once instead of each waiting for a socket timeout. After that, one trial
call is let through (half-open); its failure opens the breaker again at once, its success
closes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Breaker"]


@dataclass
class Breaker:
    name: str
    threshold: int = 2
    open_seconds: float = 2.0
    failures: int = 0
    open_until: float = 0.0
    tripped: bool = False  # opened at least once since the last success

    @property
    def closed(self) -> bool:
        """Whether a call may go through now (closed, or half-open after the pause)."""
        return time.monotonic() >= self.open_until

    def success(self) -> None:
        self.failures, self.tripped = 0, False

    def failure(self) -> None:
        self.failures += 1
        if self.tripped or self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.open_seconds
            self.failures, self.tripped = 0, True
