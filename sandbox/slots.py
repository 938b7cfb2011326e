"""A worker pool for an async service: at most ``workers`` at once, FIFO queueing beyond.

The scenario's ``workers_per_zone`` and ``queue_limit`` made real: a request holds one slot
for its whole service (a connector's slot through its Retry-After waits, as the simulator's
connector worker does); past the slots it waits in line, and past ``queue_limit`` waiting
requests it is refused at once (``503 OVERLOADED``, the simulator's ``overload``).
``workers=None`` means no limit (the stand-in without a scenario). The size can change while
requests run: a larger pool admits waiters at once, a smaller one as slots free up.

For the runners, the pool keeps the simulator's station integrals as running totals since
the process started (``snapshot()``): ``busy_seconds`` (slots held × seconds) and
``capacity_seconds`` (slots available × seconds; none accrue without a limit), the requests
``started`` in a slot, and ``wait_seconds`` they spent queued. A runner reads them once per
window and takes differences: a window's ``busy / capacity`` is the simulator's
``<tier>.utilization`` (``sim/kernel/station.py``: ``busy_area / capacity_area``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sandbox.errors import ApiError

__all__ = ["Slots"]


class Slots:
    """A resizable FIFO semaphore with a bounded queue and a few counters."""

    def __init__(self, name: str, workers: int | None = None,
                 queue_limit: int | None = None) -> None:
        self.name = name
        self.workers, self.queue_limit = workers, queue_limit
        self.busy = 0
        self.refused = 0
        self.queued_total = 0  # requests that had to wait for a slot
        self.started = 0  # requests that got a slot
        self.wait_seconds = 0.0  # time they spent queued for it
        self.busy_seconds = 0.0  # the integrals, up to self._since
        self.capacity_seconds = 0.0
        self._since = time.monotonic()
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _integrate(self) -> None:
        """Bring the busy and capacity integrals up to now (before any change to either)."""
        now = time.monotonic()
        elapsed, self._since = now - self._since, now
        self.busy_seconds += self.busy * elapsed
        if self.workers is not None:
            self.capacity_seconds += self.workers * elapsed

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def resize(self, workers: int | None, queue_limit: int | None) -> None:
        self._integrate()
        self.workers, self.queue_limit = workers, queue_limit
        self._wake()

    def _free(self) -> bool:
        return self.workers is None or self.busy < self.workers

    def _wake(self) -> None:
        while self._waiters and self._free():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._integrate()
                self.busy += 1
                self.started += 1
                waiter.set_result(None)

    async def acquire(self) -> None:
        if self._free() and not self._waiters:
            self._integrate()
            self.busy += 1
            self.started += 1
            return
        if self.queue_limit is not None and len(self._waiters) >= self.queue_limit:
            self.refused += 1
            raise ApiError(503, "OVERLOADED", f"{self.name} is at its worker and queue limit",
                           retry_after=1)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.queued_total += 1
        queued = time.monotonic()
        try:
            await waiter
            self.wait_seconds += time.monotonic() - queued
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as we were cancelled: hand the slot on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self._integrate()
        self.busy -= 1
        self._wake()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def snapshot(self) -> dict[str, int | float | None]:
        """The pool now, and its running totals (see the module)."""
        self._integrate()
        return {"workers": self.workers, "queue_limit": self.queue_limit, "busy": self.busy,
                "waiting": self.waiting, "queued_total": self.queued_total,
                "refused": self.refused, "started": self.started,
                "wait_seconds": round(self.wait_seconds, 6),
                "busy_seconds": round(self.busy_seconds, 6),
                "capacity_seconds": round(self.capacity_seconds, 6)}
