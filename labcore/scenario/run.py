"""Run settings and the SLO: how long to run, how to aggregate, what a good window is."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import Duration, Fraction, Strict

__all__ = ["IncidentSpan", "RunSpec", "SLO"]


class IncidentSpan(Strict):
    """An explicit incident for the ``incident.*`` metrics, instead of the derived one."""

    start: Duration = Field(ge=0)
    end: Duration

    @model_validator(mode="after")
    def _ordered(self) -> "IncidentSpan":
        if self.end <= self.start:
            raise ValueError("incident end must be after its start")
        return self


class RunSpec(Strict):
    """How long to simulate and how to aggregate; ``warmup`` is excluded from metrics."""

    duration: Duration = Field(gt=0)
    warmup: Duration = 0.0
    window: Duration = Field(default=10.0, gt=0)
    seed: int = 1
    replications: int = Field(default=1, ge=1)
    #: Record a histogram of queue waits per tier (2% log bins) and report
    #: ``<tier>.wait_p95``, ``<tier>.wait_p99`` and ``<tier>.p_wait_over_<x>`` (issue 14).
    wait_histograms: bool = False
    #: The ``x`` of ``<tier>.p_wait_over_<x>`` (``P(wait > x)``), when histograms are on.
    wait_over: tuple[Duration, ...] = (1.0,)
    #: The ``incident.*`` metrics' windows, when the derived incident (fault windows and
    #: the SLO breach runs they start) is not the span to judge.
    incident: IncidentSpan | None = None

    @model_validator(mode="after")
    def _fits(self) -> "RunSpec":
        if self.warmup >= self.duration:
            raise ValueError("warmup must be shorter than duration")
        if self.window > self.duration - self.warmup:
            raise ValueError("window must fit in the measured part of the run")
        if self.incident is not None and self.incident.start >= self.duration:
            raise ValueError("incident must start before the end of the run")
        return self


class SLO(Strict):
    """The service level a window must meet to count as recovered (see ``rto_seconds``)."""

    latency_p95: Duration = 1.5
    error_rate: Fraction = 0.01
    #: RTO ends once windows have met the SLO for this long without a break.
    sustain: Duration = 120.0
