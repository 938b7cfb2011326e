"""The client's remaining time, passed from hop to hop (gateway → engine → connector).

The gateway knows when its client gives up (its ``timeout``); the connector, two hops
away, holds a worker through Retry-After waits. Without the budget it kept waiting and
re-calling a rate-limited provider for requests nobody waited for any more, while the
simulator's connector stops as soon as its attempt is dead (``attempt.alive``): at
cache_stampede's standin limits the stand-in's connector queues grew without bound (200
waiting per zone after 2 minutes) where the simulator's drained in 80 s.

Each hop sends the seconds left in ``X-OmniSQL-Budget`` (relative, as gRPC's timeout is,
so no two clocks need to agree) and turns it back into a deadline on its own monotonic
clock. The rule is the simulator's: a rate-limited call whose client is gone is not
retried. A call already queued is still made (the simulator's dead attempt makes its call
too), and its answer still fills the cache: the engine's fill outlives its client's timeout
(:mod:`sandbox.cache`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from sandbox.errors import ApiError

__all__ = ["BUDGET_HEADER", "budget_headers", "deadline_from", "expired"]

BUDGET_HEADER = "X-OmniSQL-Budget"
#: A budget above this is refused (a day: no client waits longer).
MAX_BUDGET = 86_400.0


def budget_headers(deadline: float | None) -> dict[str, str]:
    """The header carrying what is left of ``deadline`` (none without a deadline)."""
    if deadline is None:
        return {}
    return {BUDGET_HEADER: f"{max(0.0, deadline - time.monotonic()):.3f}"}


def deadline_from(headers: Mapping[str, str]) -> float | None:
    """The local deadline a request's budget header gives; None without the header;
    400 for a value that is not a number of seconds in [0, a day]."""
    raw = headers.get(BUDGET_HEADER.lower(), headers.get(BUDGET_HEADER))
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0.0 <= seconds <= MAX_BUDGET:
        raise ApiError(400, "BAD_REQUEST",
                       f"{BUDGET_HEADER} must be a number of seconds in [0, {MAX_BUDGET:g}]")
    return time.monotonic() + seconds


def expired(deadline: float | None) -> bool:
    """Whether the client behind ``deadline`` has given up."""
    return deadline is not None and time.monotonic() >= deadline
