"""Checks as data: ``{metric, op, value, over}``, judged by :mod:`labcore.checks`."""

from __future__ import annotations

from typing import Literal

from .base import Quantity, Strict

__all__ = ["CheckSpec", "SCOPES", "Scope"]

#: Which windows a metric is computed over: the whole measured run, the windows before
#: the first fault, all but the recovery window (fault start to RTO end), or after it.
Scope = Literal["run", "before_fault", "outside_recovery", "after_recovery"]
SCOPES: tuple[Scope, ...] = ("run", "before_fault", "outside_recovery", "after_recovery")


class CheckSpec(Strict):
    """One check: ``{metric: latency_p95, op: "<=", value: 1.5s}`` (see :mod:`labcore.checks`)."""

    name: str | None = None
    metric: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: Quantity
    #: Which windows the metric is computed over (see :data:`Scope`).
    over: Scope = "run"

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        suffix = "" if self.over == "run" else f" ({self.over.replace('_', ' ')})"
        return f"{self.metric} {self.op} {self.value:g}{suffix}"
