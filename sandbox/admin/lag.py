"""The metadata replica's lag: sampled once a second, and read at the moment of a loss.

The simulator's RPO of a metadata primary loss is the replication lag drawn at the loss
(``topology.metadata.replication_lag``; ``failover.metadata.lag`` for a region): the writes
acknowledged within it have not reached the replica and are gone. So that the stand-in
measures that same quantity, the control plane

- samples the replica's replay lag (:func:`sandbox.metadata.replication_lag`) every second
  into a bounded series, which ``python -m sim calibrate --from-sandbox`` fits into the
  overlay's lag distribution, and
- reads it once more just before it kills the primary (a zone, a region or the primary
  alone: every path goes through ``ControlPlane.kill_node``), which the chaos RPO probe
  reports.

``GET /admin/metadata/lag`` serves both; ``DELETE`` forgets the samples (a calibration
run that should cover only its own load).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from sandbox import metadata
from sandbox.metadata import LagReading

__all__ = ["CAPACITY", "INTERVAL", "LagSeries", "read_lag", "sample_forever"]

#: Seconds between samples, and how many are kept (an hour's worth: about 30 kB of JSON).
INTERVAL = 1.0
CAPACITY = 3600


@dataclass
class LagSeries:
    """The lag samples (seconds, newest last, bounded), what could not be sampled, and the
    reading taken at the last loss of the primary."""

    capacity: int = CAPACITY
    samples: deque[float] = field(default_factory=deque)
    idle: int = 0  # no WAL written since the last sample, or caught up: nothing at risk
    unavailable: int = 0  # no replica streamed, or the primary did not answer
    at_loss: dict[str, Any] | None = None
    _last_wal: int | None = None

    def add(self, reading: LagReading | None) -> None:
        """One sample: ``None`` when the primary did not answer. A reading with no WAL
        written since the previous one is idle: PostgreSQL keeps showing the last lag it
        measured for a while, and repeating that stale value would weigh it in the fit."""
        if reading is None or not reading.streaming:
            self.unavailable += 1
        elif reading.seconds is None or reading.wal_bytes == self._last_wal:
            self.idle += 1
        else:
            self.samples.append(reading.seconds)
            while len(self.samples) > self.capacity:
                self.samples.popleft()
        if reading is not None:
            self._last_wal = reading.wal_bytes

    def clear(self) -> None:
        self.samples.clear()
        self.idle = self.unavailable = 0
        self._last_wal = None

    def loss(self, node: str, reading: LagReading | None) -> dict[str, Any]:
        """Remember the lag read just before ``node`` (the primary) was killed. Caught up
        and idle counts as 0 s (nothing to lose); no reading is ``seconds: None``."""
        streaming = reading is not None and reading.streaming
        seconds = None
        if reading is not None and streaming:
            seconds = reading.seconds or 0.0
        self.at_loss = {"node": node, "at": time.time(), "seconds": seconds,
                        "streaming": streaming,
                        "idle": bool(streaming and reading is not None
                                     and reading.seconds is None)}
        return self.at_loss

    def json(self) -> dict[str, Any]:
        return {"interval_seconds": INTERVAL, "capacity": self.capacity,
                "samples": list(self.samples), "idle": self.idle,
                "unavailable": self.unavailable, "at_loss": self.at_loss}


async def read_lag(port: int) -> LagReading | None:
    """The replica's lag as the primary on ``port`` sees it; None if it did not answer."""
    try:
        return await asyncio.to_thread(metadata.replication_lag, port)
    except psycopg.Error:
        return None


async def sample_forever(series: LagSeries, primary_port: Callable[[], int],
                         interval: float = INTERVAL) -> None:
    """Every ``interval`` seconds, one sample from whichever node is the primary now."""
    while True:
        with contextlib.suppress(OSError):
            series.add(await read_lag(primary_port()))
        await asyncio.sleep(interval)
