"""The workload: tenants, their rates and mixes, the traffic profile.

Free of simulator concepts, so that the load generators read it as the simulator does.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from ..distributions import Distribution
from .base import Duration, Fraction, Name, Rate, Strict

__all__ = ["ClosedLoop", "Diurnal", "ProfilePoint", "Tenant", "Workload"]


class ClosedLoop(Strict):
    """The tenant's ``users`` wait for their answers: each of a user's ``in_flight``
    sessions sends a query, waits for its final outcome (retries included), thinks for
    ``think_time`` and sends the next. With ``patience`` a user gives up waiting after
    that long and thinks, then sends the next query (the abandoned query still runs to its
    end). The tenant's ``rate`` and ``arrivals`` are then ignored."""

    think_time: Distribution
    in_flight: int = Field(default=1, ge=1)
    patience: Duration | None = Field(default=None, gt=0)


class Tenant(Strict):
    """A tenant's open-loop query stream and its mix over ``connector.object`` targets."""

    rate: Rate
    users: int = Field(default=10, ge=1)
    mix: dict[str, Fraction] = Field(min_length=1)
    #: ``poisson`` (open loop, the default) or ``deterministic`` (evenly spaced: for
    #: exact-timeline tests and D/x/c textbook checks).
    arrivals: Literal["poisson", "deterministic"] = "poisson"
    #: Closed-loop users instead of the open-loop stream (``null``: open loop).
    closed_loop: ClosedLoop | None = None

    @model_validator(mode="after")
    def _mix_sums_to_one(self) -> "Tenant":
        total = sum(self.mix.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"mix shares must add up to 100%, they add up to {total:.2%}")
        for target in self.mix:
            if target.count(".") != 1:
                raise ValueError(f"mix target {target!r} must read connector.object, "
                                 "e.g. crm.accounts")
        return self


class ProfilePoint(Strict):
    """Traffic scale at a time; the profile is piecewise linear between points."""

    at: Duration
    scale: float = Field(ge=0)


class Diurnal(Strict):
    """A day's cosine: scale 1 at ``peak_at``, ``trough`` half a period away."""

    period: Duration = Field(default=86400.0, gt=0)
    peak_at: Duration = 14 * 3600.0
    trough: Fraction = 0.4


class Workload(Strict):
    """Who sends what, when: free of simulator concepts so load generators can read it."""

    #: Multiplies every tenant's rate (target profiles scale production traffic down).
    scale: float = Field(default=1.0, ge=0)
    tenants: dict[Name, Tenant] = Field(min_length=1)
    profile: tuple[ProfilePoint, ...] | Diurnal = (ProfilePoint(at=0.0, scale=1.0),)

    @model_validator(mode="after")
    def _profile_sorted(self) -> "Workload":
        if isinstance(self.profile, tuple):
            times = [point.at for point in self.profile]
            if not times or times != sorted(times):
                raise ValueError("profile points must be given in increasing time order")
        return self

    def total_rate(self) -> float:
        """Peak-free nominal rate: the sum of tenant rates times ``scale``."""
        return self.scale * sum(t.rate for t in self.tenants.values())
