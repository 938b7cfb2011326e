"""Checks as data: ``{metric, op, value, over, require}``, judged by :mod:`labcore.checks`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Fraction, Quantity, Strict

__all__ = ["CheckSpec", "RequireSpec", "SCOPES", "Scope"]

#: Which windows a metric is computed over: the whole measured run, the windows before
#: the first fault, all but the recovery window (fault start to RTO end), or after it.
Scope = Literal["run", "before_fault", "outside_recovery", "after_recovery"]
SCOPES: tuple[Scope, ...] = ("run", "before_fault", "outside_recovery", "after_recovery")


class RequireSpec(Strict):
    """The verdict rule over replications: ``require: {p_pass: 0.9}`` passes a check when at
    least 90% of the replications pass it on their own (a replication without a value, e.g.
    one that never recovered, is a failed one). Without ``require`` the rule is the mean."""

    #: The least share of replications that must pass, in (0, 1].
    p_pass: Annotated[Fraction, Field(gt=0.0, le=1.0)]


class CheckSpec(Strict):
    """One check: ``{metric: latency_p95, op: "<=", value: 1.5s}`` (see :mod:`labcore.checks`)."""

    name: str | None = None
    metric: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: Quantity
    #: Which windows the metric is computed over (see :data:`Scope`).
    over: Scope = "run"
    #: The verdict rule over replications (see :class:`RequireSpec`); none: the mean's.
    require: RequireSpec | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        suffix = "" if self.over == "run" else f" ({self.over.replace('_', ' ')})"
        return f"{self.metric} {self.op} {self.value:g}{suffix}"
