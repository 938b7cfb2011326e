"""Which processes belong to a sandbox: by identity (PID and start time), never by path text.

supervisord starts in a session of its own (`start_new_session`), and every program it runs,
with every child of those (PostgreSQL backends, uvicorn), inherits that session id. `up`
records the session leader's PID and start time in `DIR/owner.json`; a sandbox's processes are
then exactly the live processes of that session created no earlier than the leader. The session
outlives a `kill -9` of supervisord, so the remains of a crashed sandbox are still found, and a
recycled PID is told apart by its start time. `DIR/processes.json` keeps the members' PIDs and
start times as seen at the last `up`/`status`, for people reading the directory.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import psutil

from sandbox.state import Layout, write_state

__all__ = [
    "Identity",
    "Status",
    "classify",
    "data_dirs_in_use",
    "leader",
    "members",
    "record_leader",
    "record_members",
    "stop_members",
]

Status = Literal["running", "crashed", "stopped"]


@dataclass(frozen=True)
class Identity:
    """A process as the kernel knows it: PID plus creation time (seconds since the epoch)."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> Identity:
        return cls(pid, psutil.Process(pid).create_time())

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return (abs(proc.create_time() - self.started) < 0.05
                    and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False


def _owner_file(root: Path) -> Path:
    return root / "owner.json"


def record_leader(layout: Layout, pid: int) -> Identity:
    ident = Identity.of(pid)
    write_state(_owner_file(layout.root), {"supervisord": asdict(ident)})
    return ident


def leader(root: Path) -> Identity | None:
    """supervisord's recorded identity (alive or not), None if never recorded."""
    try:
        data = json.loads(_owner_file(root).read_text())["supervisord"]
        return Identity(int(data["pid"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def members(root: Path) -> list[Identity]:
    """Live processes of the sandbox's session, the leader included, callers excluded."""
    lead = leader(root)
    if lead is None:
        return []
    found, me = [], os.getpid()
    for proc in psutil.process_iter(["pid", "create_time", "status"]):
        pid, started = proc.info["pid"], proc.info["create_time"]
        if pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE or started is None:
            continue
        try:
            sid = os.getsid(pid)
        except OSError:
            continue
        # 0.05 s slack: create_time is rounded to clock ticks
        if sid == lead.pid and started >= lead.started - 0.05:
            found.append(Identity(pid, started))
    return found


def record_members(root: Path) -> list[Identity]:
    live = members(root)
    write_state(root / "processes.json", {"processes": [asdict(i) for i in live]})
    return live


def classify(root: Path) -> Status:
    lead = leader(root)
    if lead is not None and lead.alive():
        return "running"
    return "crashed" if members(root) else "stopped"


def _signal_all(idents: list[Identity], sig: signal.Signals) -> None:
    for ident in idents:
        if ident.alive():  # checked just before, so a recycled PID is never signalled
            try:
                os.kill(ident.pid, sig)
            except ProcessLookupError:
                pass


def stop_members(idents: list[Identity], grace: float = 8.0) -> list[Identity]:
    """TERM, then KILL after `grace`; returns those still alive at the end (should be none)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_all(idents, sig)
        deadline = time.monotonic() + grace
        while any(i.alive() for i in idents) and time.monotonic() < deadline:
            time.sleep(0.1)
    return [i for i in idents if i.alive()]


def data_dirs_in_use(layout: Layout) -> list[str]:
    """PostgreSQL data dirs whose `postmaster.pid` names a live postgres process."""
    busy = []
    for datadir in (layout.pg_primary, layout.pg_replica):
        try:
            pid = int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
            name = psutil.Process(pid).name()
        except (OSError, ValueError, psutil.Error):
            continue
        if name.startswith("postgres"):
            busy.append(f"{datadir} (postmaster PID {pid})")
    return busy
