"""Metadata copied to the secondary region by periodic snapshots (``failover.metadata.mode:
snapshot``), and restored from the newest one at a region loss.

The simulator (``sim.model.region``) copies the metadata to the secondary region only as a
snapshot every ``interval``, on a schedule with a uniform phase per replication (stream
``failover.snapshot_phase``); the RPO of a region loss is the time since the last copy, and
``failover.rpo_bound_seconds`` is the interval (the scheme's worst case: a loss just before
the next copy). The stand-in does the same with real copies:

- **The schedule.** When a scenario with that mode (and metadata replicated) is applied,
  the admin takes a *baseline* snapshot at once (the secondary starts with a full copy: the
  simulator's schedule has run since long before its run starts, the stand-in's cannot
  have), then one at ``applied + phase + k * interval`` (k = 0, 1, ...), the phase drawn
  as the simulator draws it for the run seed (its first replication's phase).
- **A snapshot** is ``pg_dump -Fc`` of the metadata database on the current primary. Its
  start time is read just before ``pg_dump`` starts: the dump reads one consistent MVCC
  snapshot taken when it begins, so every write acknowledged before that time is in it and
  a later one may not be. The RPO convention is therefore **loss time − the newest
  completed snapshot's start** (the simulator's copies are instantaneous: start = end, the
  same quantity). A dump still running at the loss does not count.
- **At a region loss** the schedule stops, and the secondary region's metadata is the
  newest completed snapshot: the replica in the secondary's zone is promoted (a writable
  server there) and its content replaced by ``pg_restore --clean --single-transaction`` of
  that snapshot, so every write after the snapshot's start is gone, whatever the streaming
  replica had received (:func:`restore_newest`).

``GET /admin/metadata/snapshots`` shows the schedule (interval, phase), the snapshots taken
(bounded) and the restore at the last loss with its RPO; ``rpo_bound_seconds`` there is the
interval the scheduler runs with: the scheme's worst case, not a measurement of one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import ApiError
from sandbox.pgcluster import pg_bindir

__all__ = ["KEEP_FILES", "KEEP_RECORDS", "SnapshotSchedule", "next_due", "restore_newest",
           "snapshot_phase"]

#: Dumps kept on disk (the newest is the one a loss restores) and records kept in memory.
KEEP_FILES = 3
KEEP_RECORDS = 200
#: A dump or a restore of the metadata database (a few hundred kB) that takes longer than
#: this is stuck: killed and recorded as failed.
TOOL_TIMEOUT = 120.0
STREAM = "failover.snapshot_phase"  # the simulator's stream (sim.model.region)


def snapshot_phase(seed: int, interval: float) -> float:
    """The schedule's phase, drawn as the simulator draws it for the run seed ``seed``
    (its first replication; ``sim.run.replication_seeds`` starts with the run seed)."""
    from sandbox.standin import derive_seed

    return random.Random(derive_seed(seed, STREAM)).uniform(0.0, interval)


def next_due(started: float, phase: float, interval: float, now: float) -> float:
    """The first scheduled time ``started + phase + k * interval`` (k >= 0) not before now."""
    first = started + phase
    if now <= first:
        return first
    k = -(-(now - first) // interval)  # ceil
    return first + k * interval


def _tool(name: str) -> str:
    path = pg_bindir() / name
    if not os.access(path, os.X_OK):
        raise ApiError(503, "METADATA_UNAVAILABLE", f"{name} not found beside initdb")
    return str(path)


async def _run(cmd: list[str]) -> str | None:
    """Run a libpq client (PGPASSWORD from the environment); None, or why it failed."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), TOOL_TIMEOUT)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode == 0:
        return None
    lines = err.decode(errors="replace").strip().splitlines()
    return f"exit {proc.returncode}: {lines[-1] if lines else 'no output'}"


def _target(port: int) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]


@dataclass
class SnapshotSchedule:
    """The snapshot schedule the admin runs (none: ``interval`` is None) and its history."""

    directory: Path
    interval: float | None = None
    phase: float = 0.0
    started_at: float | None = None  # wall time the schedule began (the scenario's apply)
    taken: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_RECORDS))
    count: int = 0  # snapshots completed since the schedule began (taken is bounded)
    failed: int = 0
    restored: dict[str, Any] | None = None  # the restore at the last region loss
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def start(self, interval: float, seed: int, primary_port: Callable[[], int]) -> None:
        """(Re)start the schedule now: a baseline snapshot, then every ``interval``."""
        await self.stop()
        self.interval, self.phase = interval, snapshot_phase(seed, interval)
        self.started_at, self.count, self.failed = time.time(), 0, 0
        self.taken.clear()
        self.task = asyncio.create_task(self._loop(primary_port))

    async def apply(self, section: dict[str, Any] | None,
                    primary_port: Callable[[], int]) -> None:
        """Follow the applied configuration's ``failover`` section: a schedule when its
        metadata is copied by snapshots (:func:`sandbox.region.failover_section`)."""
        meta = (section or {}).get("metadata") or {}
        if section is not None and meta.get("snapshots"):
            await self.start(float(meta["interval_seconds"]), int(section["seed"]),
                             primary_port)
        else:
            await self.disable()

    async def resume(self, root: Path, primary_port: Callable[[], int]) -> None:
        """At the admin's start: the schedule of the configuration applied last, if any."""
        from sandbox.standin import STANDIN_FILE
        from sandbox.state import read_json_file

        saved = read_json_file(root / STANDIN_FILE) or {}
        await self.apply(saved.get("failover"), primary_port)

    async def stop(self) -> None:
        """Stop taking snapshots (a dump under way is killed and does not count)."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def disable(self) -> None:
        """No snapshot mode in the applied scenario: no schedule, no history."""
        await self.stop()
        self.interval, self.started_at, self.restored = None, None, None
        self.taken.clear()

    async def _loop(self, primary_port: Callable[[], int]) -> None:
        assert self.interval is not None and self.started_at is not None
        await self.take(primary_port(), "baseline")
        while True:
            due = next_due(self.started_at, self.phase, self.interval, time.time())
            await asyncio.sleep(max(0.0, due - time.time()))
            await self.take(primary_port(), "scheduled")

    async def take(self, port: int, kind: str) -> dict[str, Any]:
        """One ``pg_dump`` of the metadata database on ``port``, recorded."""
        self.directory.mkdir(exist_ok=True)
        started = time.time()  # before the dump's own snapshot: see the module docstring
        path = self.directory / f"metadata-{started:.6f}.dump"
        partial = path.with_suffix(".partial")
        try:
            error = await _run([_tool("pg_dump"), *_target(port), "-Fc", "-f", str(partial)])
        except (ApiError, OSError) as exc:  # no pg_dump: recorded, the schedule goes on
            error = getattr(exc, "message", None) or str(exc)
        except asyncio.CancelledError:  # stopped (a region loss): not a snapshot at all
            partial.unlink(missing_ok=True)
            raise
        record = {"kind": kind, "started_at": started, "finished_at": time.time(),
                  "file": path.name, "error": error}
        self.taken.append(record)
        if error is None:
            partial.replace(path)  # a file under its final name is a completed snapshot
            record["bytes"] = path.stat().st_size
            self.count += 1
            self._prune()
        else:
            partial.unlink(missing_ok=True)
            self.failed += 1
        return record

    def _prune(self) -> None:
        kept = {r["file"] for r in self.completed()[-KEEP_FILES:]}
        for old in self.directory.glob("metadata-*.dump"):
            if old.name not in kept:
                old.unlink(missing_ok=True)

    def completed(self) -> list[dict[str, Any]]:
        return [r for r in self.taken if r["error"] is None]

    def effective(self) -> dict[str, Any]:
        """What the scheduler runs with (``GET /admin/config``'s ``failover.metadata``)."""
        return {"mode": "snapshot" if self.interval is not None else None,
                "interval_seconds": self.interval,
                "phase_seconds": None if self.interval is None else round(self.phase, 6),
                "started_at": self.started_at, "running": self.running}

    def json(self) -> dict[str, Any]:
        completed = self.completed()
        return {**self.effective(), "snapshots_completed": self.count,
                "snapshots_failed": self.failed,
                "newest_started_at": completed[-1]["started_at"] if completed else None,
                "snapshots": list(self.taken), "restored": self.restored,
                # The scheme's worst case (a loss just before the next copy): the interval
                # this scheduler runs with, not something one run measures.
                "rpo_bound_seconds": self.interval,
                "rpo_bound_is": "the schedule's interval: the scheme's worst case"}


async def restore_newest(schedule: SnapshotSchedule, port: int, lost_at: float,
                         ) -> dict[str, Any]:
    """Replace the metadata on ``port`` (the promoted secondary) by the newest snapshot
    completed before the loss; the RPO is ``lost_at`` − that snapshot's start."""
    completed = schedule.completed()  # the schedule stopped at the loss: all before it
    newest = completed[-1] if completed else None
    if newest is None:
        raise ApiError(503, "METADATA_UNAVAILABLE", "no completed metadata snapshot to restore")
    error = await _run([_tool("pg_restore"), *_target(port), "--clean", "--if-exists",
                        "--single-transaction", "--no-owner",
                        str(schedule.directory / newest["file"])])
    if error is not None:
        raise ApiError(503, "METADATA_UNAVAILABLE", f"pg_restore {error}")
    schedule.restored = {"snapshot": newest["file"], "snapshot_started_at": newest["started_at"],
                         "lost_at": lost_at, "restored_at": time.time(),
                         "rpo_seconds": round(lost_at - newest["started_at"], 6)}
    return schedule.restored
