"""A worker pool for an async service: at most ``workers`` at once, FIFO queueing beyond.

The scenario's ``workers_per_zone`` and ``queue_limit`` made real: a request holds one slot
for its whole service (a connector's slot through its Retry-After waits, as the simulator's
connector worker does); past the slots it waits in line, and past ``queue_limit`` waiting
requests it is refused at once (``503 OVERLOADED``, the simulator's ``overload``).
``workers=None`` means no limit (the stand-in without a scenario). The size can change while
requests run: a larger pool admits waiters at once, a smaller one as slots free up.
"""

from __future__ import annotations

import asyncio
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
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def resize(self, workers: int | None, queue_limit: int | None) -> None:
        self.workers, self.queue_limit = workers, queue_limit
        self._wake()

    def _free(self) -> bool:
        return self.workers is None or self.busy < self.workers

    def _wake(self) -> None:
        while self._waiters and self._free():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.busy += 1
                waiter.set_result(None)

    async def acquire(self) -> None:
        if self._free() and not self._waiters:
            self.busy += 1
            return
        if self.queue_limit is not None and len(self._waiters) >= self.queue_limit:
            self.refused += 1
            raise ApiError(503, "OVERLOADED", f"{self.name} is at its worker and queue limit",
                           retry_after=1)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.queued_total += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as we were cancelled: hand the slot on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.busy -= 1
        self._wake()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def snapshot(self) -> dict[str, int | None]:
        return {"workers": self.workers, "queue_limit": self.queue_limit, "busy": self.busy,
                "waiting": self.waiting, "queued_total": self.queued_total,
                "refused": self.refused}
