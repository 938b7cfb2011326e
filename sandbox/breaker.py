"""A circuit breaker for calls to a shared dependency (Redis), judged over a time window.

It opens (for `open_seconds`; callers then skip the dependency at once instead of each
waiting for a socket timeout) when, over the last `window` seconds, at least `threshold`
*independent* failures were seen and failures make up at least `ratio` of the outcomes.
After the pause, calls go through again (half-open); the first failure then opens it again
at once, a success closes it.

Why "independent": on a starved machine one slow moment (the engine's event loop or Redis
not scheduled for half a second) makes every call in flight time out together. Counted one
by one, those simultaneous timeouts looked like a run of consecutive failures and opened the
breaker against a Redis that worked; the cache was then bypassed and coalescing lost for
2 s. A failed call that had started before the last counted failure overlapped it: it is
the same slow moment, not new evidence, so it is not counted. Against a Redis that is down
or paused, calls started one after another keep failing, and the breaker opens after the
second, as quickly as before. Sporadic slow answers among successes stay under `ratio`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Breaker"]


@dataclass
class Breaker:
    name: str
    threshold: int = 2  # independent failures within the window
    ratio: float = 0.5  # and at least this share of the window's outcomes
    window: float = 10.0
    open_seconds: float = 2.0
    open_until: float = 0.0
    tripped: bool = False  # opened at least once since the last success
    last_failed: bool = False  # the latest outcome was a failure
    _failures: deque[float] = field(default_factory=deque, repr=False)
    _successes: deque[float] = field(default_factory=deque, repr=False)
    _last_failure: float = field(default=float("-inf"), repr=False)

    @property
    def closed(self) -> bool:
        """Whether a call may go through now (closed, or half-open after the pause)."""
        return time.monotonic() >= self.open_until

    @property
    def failures(self) -> int:
        """Independent failures within the window."""
        self._expire(time.monotonic())
        return len(self._failures)

    def success(self) -> None:
        now = time.monotonic()
        self._successes.append(now)
        self._expire(now)
        self.tripped, self.last_failed = False, False

    def failure(self, started: float | None = None) -> None:
        """Record a failed call; `started` (time.monotonic() before the call) lets a call that
        overlapped the previous failure count as the same event."""
        now = time.monotonic()
        self.last_failed = True
        if started is not None and started < self._last_failure:
            return
        self._last_failure = now
        if self.tripped:  # the half-open trial failed: the dependency is still down
            self._open(now)
            return
        self._failures.append(now)
        self._expire(now)
        outcomes = len(self._failures) + len(self._successes)
        if len(self._failures) >= self.threshold and len(self._failures) >= self.ratio * outcomes:
            self._open(now)

    def _open(self, now: float) -> None:
        self.open_until, self.tripped = now + self.open_seconds, True
        self._failures.clear()
        self._successes.clear()

    def _expire(self, now: float) -> None:
        for events in (self._failures, self._successes):
            while events and events[0] < now - self.window:
                events.popleft()
