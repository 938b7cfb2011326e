"""The gateway's per-version tally of engine attempts: what the canary analysis judges.

Only the gateway knows which engine served an attempt, so it counts, per analysis window,
the attempts the canary and the baseline engines served, their errors (any answer but 200,
a timeout, an unreachable engine) and their latencies, as the simulator's release counts
attempts reaching the engine. The admin's canary controller (``sandbox/admin/canary.py``)
takes the window with :meth:`VersionTally.take`, which also starts the next one. Counting
is armed only while an analysis runs, so a stand-in without one keeps no latencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import ApiError

__all__ = ["MAX_LATENCIES", "VersionTally", "deployable_version"]

_VERSION = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def deployable_version(value: Any) -> str:
    """A version a deployment (a canary, a blue-green cutover) may name, else 400."""
    if not isinstance(value, str) or not _VERSION.match(value):
        raise ApiError(400, "BAD_REQUEST", "version must be a short version string")
    return value

#: Latencies kept per version and window; beyond it the window's sample is the first ones
#: (the stand-in serves tens of queries a second: a 3-minute window holds far fewer).
MAX_LATENCIES = 200_000


@dataclass
class _Window:
    n: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"n": self.n, "errors": self.errors, "latencies": self.latencies}


@dataclass
class VersionTally:
    """Attempts per version in the current window, and the canary's since it was armed."""

    armed: bool = False
    exposed: int = 0  # attempts routed to the canary since arming (the simulator's count)
    truncated: bool = False
    windows: dict[bool, _Window] = field(default_factory=lambda: {True: _Window(),
                                                                   False: _Window()})

    def arm(self, on: bool) -> None:
        """Start counting afresh (``on``) or stop and forget."""
        self.armed, self.exposed, self.truncated = on, 0, False
        self.windows = {True: _Window(), False: _Window()}

    def routed(self, canary: bool) -> None:
        if self.armed and canary:
            self.exposed += 1

    def record(self, canary: bool, ok: bool, latency: float) -> None:
        if not self.armed:
            return
        window = self.windows[canary]
        window.n += 1
        window.errors += 0 if ok else 1
        if len(window.latencies) < MAX_LATENCIES:
            window.latencies.append(latency)
        else:
            self.truncated = True

    def take(self) -> dict[str, Any]:
        """The window so far (``canary``, ``baseline``, ``exposed``); the next one starts."""
        out = {"armed": self.armed, "canary": self.windows[True].json(),
               "baseline": self.windows[False].json(), "exposed": self.exposed,
               "truncated": self.truncated}
        self.windows, self.truncated = {True: _Window(), False: _Window()}, False
        return out
