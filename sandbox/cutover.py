"""A blue-green cutover at the gateway: switch, drain, tear down (issue 18).

Each zone runs two engine processes, ``engine-<zone>`` (blue) and ``engine-green-<zone>``
(green), with the same worker slots; the router sends new attempts to the *active* colour
only. :meth:`Cutover.switch` makes the other colour active at once (new attempts go there
from that instant) and starts the drain: the attempts the old colour was serving at the
switch are watched until none is left or ``drain_timeout`` has passed. At the deadline
the old colour is torn down as a load balancer's deregistration delay ends (AWS ALB's
``deregistration_delay``): every attempt it still serves is cut and answers the client
``503 ENGINE_UNAVAILABLE``, the stand-in's "unavailable" (what the simulator's
``BlueGreenCutover`` gives them: ``UNAVAILABLE``, which clients retry as their policy
says). A cut attempt is never retried in another zone by the gateway, whatever its
``zone_retry``: the simulator's gateway does not either.

The facts are the simulator's (``cutover.*``): ``inflight_at_switch``, ``dropped_requests``
(attempts cut) and ``drain_seconds`` (the scheduled time, from the switch, of the first
drain check that finds the old colour empty: every :data:`POLL` seconds as the
simulator's, the last at the deadline; 0 when nothing was in flight; null when it did not
drain by the deadline). The old
colour's processes keep running, deregistered and idle, as the next release's target and
the rollback (``reset`` makes blue active again at once, cutting nothing).

Cutting uses the attempt's own :func:`asyncio.timeout` scope (rescheduled to now), so an
attempt costs one small object and two set operations (about 4 µs) whether or not a
cutover runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.errors import ApiError
from sandbox.service import handle_errors, read_json

__all__ = ["BLUE", "COLOURS", "GREEN", "Cutover", "Tracked", "cutover_route"]

BLUE, GREEN = "blue", "green"
COLOURS = (BLUE, GREEN)
FACTS = ("inflight_at_switch", "dropped_requests", "drain_seconds")
#: Seconds between drain checks: the simulator's controller polls as often (its
#: ``BlueGreenCutover.POLL``), so both measure the drain to the same precision.
POLL = 0.1


@dataclass(eq=False)
class Tracked:
    """One attempt on a blue or green engine: its cancel scope, and whether it was cut."""

    colour: str
    scope: asyncio.Timeout = field(default_factory=lambda: asyncio.timeout(None))
    cut: bool = False


@dataclass
class Cutover:
    """Which colour serves, and the last cutover's drain and facts."""

    active: str = BLUE
    phase: str = "idle"  # idle | draining | done
    version: str | None = None
    drain_timeout: float | None = None
    facts: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(FACTS))
    inflight: dict[str, set[Tracked]] = field(
        default_factory=lambda: {c: set() for c in COLOURS})
    _task: asyncio.Task[None] | None = None

    # -- the hot path ---------------------------------------------------------------------

    def enter(self, colour: str) -> Tracked:
        tracked = Tracked(colour)
        self.inflight[colour].add(tracked)
        return tracked

    def leave(self, tracked: Tracked) -> None:
        self.inflight[tracked.colour].discard(tracked)

    # -- the cutover ----------------------------------------------------------------------

    def switch(self, version: str, drain_timeout: float) -> dict[str, Any]:
        """Make the other colour active now and drain the old one (409 while draining)."""
        if self.phase == "draining":
            raise ApiError(409, "CONFLICT", "a cutover is still draining")
        old = self.active
        self.active = GREEN if old == BLUE else BLUE
        self.phase, self.version, self.drain_timeout = "draining", version, drain_timeout
        self.facts = dict.fromkeys(FACTS)
        self.facts["inflight_at_switch"] = float(len(self.inflight[old]))
        if self.inflight[old]:
            self._task = asyncio.create_task(self._drain(old, drain_timeout, time.monotonic()))
        else:  # nothing to drain: empty at the switch, as the simulator has it
            self._done(0, 0.0)
        return self.json()

    async def _drain(self, old: str, timeout: float, switched: float) -> None:
        """Check the old colour every :data:`POLL` seconds after the switch (the last
        check at the deadline) until it is empty; then tear down what it still runs. The
        drain is the scheduled time of the check that found it empty, as the simulator's
        checks are exact: a check the event loop runs a millisecond late (0.5012 s for a
        500 ms drain, 21:34 UTC) has still found blue drained before the teardown."""
        checked = 0.0  # the last check's time since the switch, as scheduled
        while self.inflight[old] and checked < timeout - 1e-9:
            checked = min(checked + POLL, timeout)
            await asyncio.sleep(max(0.0, switched + checked - time.monotonic()))
        if self.inflight[old]:
            self._done(self._cut(old), None)
        else:
            self._done(0, round(checked, 4))

    def _cut(self, colour: str) -> int:
        """Tear ``colour`` down under its attempts: each one's scope ends now."""
        now = asyncio.get_running_loop().time()
        cut = list(self.inflight[colour])
        for tracked in cut:
            tracked.cut = True
            tracked.scope.reschedule(now)
        return len(cut)

    def _done(self, dropped: int, drained: float | None) -> None:
        self.facts.update(dropped_requests=float(dropped), drain_seconds=drained)
        self.phase = "done"

    def reset(self) -> dict[str, Any]:
        """Blue serves again at once; a drain in progress stops without cutting anything."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self.active, self.phase, self.version, self.drain_timeout = BLUE, "idle", None, None
        self.facts = dict.fromkeys(FACTS)
        return self.json()

    def json(self) -> dict[str, Any]:
        return {"active": self.active, "phase": self.phase, "version": self.version,
                "drain_timeout": self.drain_timeout, **self.facts,
                "inflight": {c: len(s) for c, s in self.inflight.items()}}


Account = Callable[[], dict[str, Any]]


def cutover_route(cut_over: Callable[[str, float], dict[str, Any]], reset: Account,
                  account: Account) -> Route:
    """The gateway's ``/internal/cutover`` (for the admin service, which checks the body):
    POST ``{"version", "drain_timeout"}`` cuts over, DELETE resets, GET the account."""

    @handle_errors
    async def endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            return JSONResponse(reset())
        if request.method == "POST":
            body = await read_json(request)
            drain = body.get("drain_timeout")
            if isinstance(drain, bool) or not isinstance(drain, (int, float)) or not 0 < drain:
                raise ApiError(400, "BAD_REQUEST", "drain_timeout must be a positive number")
            return JSONResponse(cut_over(str(body.get("version")), float(drain)))
        return JSONResponse(account())

    return Route("/internal/cutover", endpoint, methods=["GET", "POST", "DELETE"])
