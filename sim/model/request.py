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

from labcore.facts import OUTCOMES

__all__ = ["Request", "Attempt", "OK", "TIMEOUT", "RATE_LIMITED", "UNAUTHORIZED",
           "UNAVAILABLE", "OVERLOAD", "PROVIDER_ERROR", "CAPPED", "OUTCOME_INDEX"]

OUTCOME_INDEX = {name: i for i, name in enumerate(OUTCOMES)}
OK = OUTCOME_INDEX["ok"]
TIMEOUT = OUTCOME_INDEX["timeout"]
RATE_LIMITED = OUTCOME_INDEX["rate_limited"]
UNAUTHORIZED = OUTCOME_INDEX["unauthorized"]
UNAVAILABLE = OUTCOME_INDEX["unavailable"]
OVERLOAD = OUTCOME_INDEX["overload"]
PROVIDER_ERROR = OUTCOME_INDEX["provider_error"]
CAPPED = OUTCOME_INDEX["capped"]


class Request:
    """One client query: who asked, for which result key, and since when."""

    __slots__ = ("callbacks", "id", "tenant", "user", "target", "key", "t0", "attempts",
                 "backoff", "pin")
    _ok = True  # what SimPy's step reads of an event: it never fails, carries no value
    _value = None

    def __init__(self, rid: int, tenant: int, user: int, target: int, key: int, t0: float) -> None:
        self.callbacks: list | None = None
        self.id = rid
        self.tenant = tenant
        self.user = user
        self.target = target  # index into the model's connector.object targets
        self.key = key  # result-cache key
        self.t0 = t0
        self.attempts = 0
        self.backoff = 0.0  # last backoff, for decorrelated jitter
        self.pin = -1  # the zone a zone-targeted surge sends it to (-1: none)


class Attempt:
    """One try of a request through gateway → engine → cache → connector."""

    __slots__ = ("callbacks", "gen", "request", "zone", "start", "alive", "t_enq", "phase",
                 "calls", "outcome", "slot")
    _ok = True
    _value = None

    def __init__(self, request: Request, zone: int, start: float) -> None:
        self.callbacks: list | None = None
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
