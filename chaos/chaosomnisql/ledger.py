"""What this ``chaos run`` process has injected and started, for the activities that follow.

Chaos Toolkit passes nothing from one activity to the next, so the start of the latest
fault (the origin of the RTO), the running tenant flood and the metadata writer live here.
It is per process and per run: :func:`reset` is called when an experiment starts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEDGER", "FaultRecord", "Ledger", "reset", "wait_until"]


@dataclass
class FaultRecord:
    kind: str
    target: str
    started_at: float  # time.monotonic()
    wall_started: float  # time.time(), for reports
    restored_at: float | None = None


@dataclass
class Ledger:
    faults: list[FaultRecord] = field(default_factory=list)
    running: dict[str, Any] = field(default_factory=dict)  # "flood", "writer"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def injected(self, kind: str, target: str) -> FaultRecord:
        record = FaultRecord(kind, target, time.monotonic(), time.time())
        with self.lock:
            self.faults.append(record)
        return record

    def restored(self, kind: str, target: str, at: float | None = None) -> None:
        """The latest such fault ended ``at`` (``time.monotonic()``; default now)."""
        with self.lock:
            for record in reversed(self.faults):
                if (record.kind, record.target) == (kind, target) and record.restored_at is None:
                    record.restored_at = time.monotonic() if at is None else at
                    return

    def last(self, kind: str) -> FaultRecord | None:
        with self.lock:
            return next((r for r in reversed(self.faults) if r.kind == kind), None)

    def last_fault_start(self) -> float | None:
        with self.lock:
            return self.faults[-1].started_at if self.faults else None


LEDGER = Ledger()


def wait_until(deadline: float, record: FaultRecord | None = None, poll: float = 1.0) -> bool:
    """Sleep until ``deadline`` (``time.monotonic()``), every ``poll`` seconds at most;
    False as soon as ``record``'s fault was restored (a rollback ended it first)."""
    while time.monotonic() < deadline:
        if record is not None and record.restored_at is not None:
            return False
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
    return record is None or record.restored_at is None


def reset() -> None:
    """Forget everything (a new experiment starts); running helpers are stopped by their owners."""
    with LEDGER.lock:
        LEDGER.faults.clear()
        LEDGER.running.pop("rpo_seconds", None)  # measured by this run's failover, if any
        LEDGER.running.pop("run_facts", None)  # whole-run facts a probe measured (canary)
