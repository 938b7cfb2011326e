"""A client request and its attempts, the jobs that flow through the tiers.

A :class:`Request` is what a tenant's user asked for; each try of it through the stack
is an :class:`Attempt`. An attempt dies when it ends (success, error, or the client's
timeout); work still queued or in service for a dead attempt is wasted work, which is
what makes retry storms and metastable overload visible.

Both are their own events (see :mod:`sim.kernel.events`): a request is scheduled as its
own arrival, an attempt as the end of its current service phase. A request is never in
the event queue twice at once, nor is an attempt, so no separate event object is needed
on the hot path.
"""

from __future__ import annotations

from typing import Final

from labcore.facts import OUTCOMES

from ..kernel.events import Light
from ..kernel.station import Job

__all__ = ["Request", "Attempt", "OK", "TIMEOUT", "RATE_LIMITED", "UNAUTHORIZED",
           "UNAVAILABLE", "OVERLOAD", "PROVIDER_ERROR", "CAPPED", "OUTCOME_INDEX"]

OUTCOME_INDEX = {name: i for i, name in enumerate(OUTCOMES)}
# Literals, so that compiled code uses them as constants (not a module dictionary
# lookup each time); checked against OUTCOMES' order just below.
OK: Final = 0
TIMEOUT: Final = 1
RATE_LIMITED: Final = 2
UNAUTHORIZED: Final = 3
UNAVAILABLE: Final = 4
OVERLOAD: Final = 5
PROVIDER_ERROR: Final = 6
CAPPED: Final = 7
if [OUTCOME_INDEX[name] for name in ("ok", "timeout", "rate_limited", "unauthorized",
                                     "unavailable", "overload", "provider_error", "capped")
    ] != [OK, TIMEOUT, RATE_LIMITED, UNAUTHORIZED, UNAVAILABLE, OVERLOAD, PROVIDER_ERROR,
          CAPPED]:
    raise ImportError("labcore.facts.OUTCOMES changed order: renumber sim/model/request.py")


class Request(Light):
    """One client query: who asked, for which result key, and since when."""

    __slots__ = ("id", "tenant", "user", "target", "key", "t0", "attempts", "backoff", "pin")

    def __init__(self, rid: int, tenant: int, user: int, target: int, key: int, t0: float) -> None:
        self.callbacks = None  # a light event: its arrival, or its retry
        self.handler = None
        self.id = rid
        self.tenant = tenant
        self.user = user
        self.target = target  # index into the model's connector.object targets
        self.key = key  # result-cache key
        self.t0 = t0
        self.attempts = 0
        self.backoff = 0.0  # last backoff, for decorrelated jitter
        self.pin = -1  # the zone a zone-targeted surge sends it to (-1: none)


class Attempt(Job):
    """One try of a request through gateway → engine → cache → connector."""

    __slots__ = ("request", "zone", "start", "phase", "calls", "outcome", "slot")

    def __init__(self, request: Request, zone: int, start: float) -> None:
        self.callbacks = None  # a light event: the end of its phase at a station
        self.handler = None
        self.gen = 0  # generation of the station serving it (stale after a failure)
        self.request = request
        self.zone = zone
        self.start = start
        self.alive = True
        self.t_enq = start
        self.phase = 0  # connector state machine
        self.calls = 0  # provider calls made by the connector for this attempt
        self.outcome = OK
        #: Gateway bookkeeping to undo when it ends: 1 = holds one of its user's concurrency
        #: slots, 2 = counted in its zone's outstanding attempts (balancing policies).
        self.slot = 0
