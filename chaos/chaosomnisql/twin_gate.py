"""The pre-flight twin gate: the simulator predicts the blast radius before anything is injected.

Before the wrapper starts ``chaos``, it runs the simulator on the experiment's scenario at
the target's profile (at least :data:`~chaosomnisql.summary.MIN_REPLICATIONS`
replications) and compares three predicted figures with the experiment's safeguards:

``peak error rate``
    Per replication, the worst measured window's error rate (the safeguard
    ``blast_radius_ok`` aborts a run whose error rate over 5 s exceeds
    ``omnisql_max_error_rate``); the gate judges the mean over replications.
``zones lost``
    The most zones the scenario's faults take down (an ``az_loss`` each, a
    ``region_loss`` every zone); the safeguard allows ``omnisql_max_zones_lost``.
``RTO``
    The predicted ``rto_seconds`` against the experiment's abort time
    (``omnisql_abort_seconds``, default: how long the recovery probe watches, the recovery
    timeout plus the sustain cut at the run's end after the first injection, as
    :mod:`.timeline` has it). A replication that never recovers counts as beyond any abort
    time, so the mean is then beyond it too.

A figure beyond its limit refuses the run (exit 3, the figures printed); ``--force`` runs
it anyway. On by default for the ``eks`` target, ``--twin-gate`` for the sandbox.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EXIT_REFUSED", "Figure", "GateResult", "Safeguards", "run_gate", "safeguards"]

#: The wrapper's exit code when the gate refuses a run.
EXIT_REFUSED = 3


@dataclass(frozen=True)
class Safeguards:
    """The experiment's limits: what its safeguard and its recovery measurement allow."""

    max_error_rate: float
    max_zones_lost: int
    abort_seconds: float


@dataclass(frozen=True)
class Figure:
    """One predicted figure beside its limit: the mean over replications, the spread of
    single runs (2.5-97.5%) and how many replications had no value (never recovered)."""

    name: str
    predicted: float
    low: float
    high: float
    limit: float
    missing: int = 0

    @property
    def breached(self) -> bool:
        return self.predicted > self.limit

    def line(self) -> str:
        mark = "REFUSE" if self.breached else "ok"
        spread = f"single runs {_fmt(self.low)}..{_fmt(self.high)}"
        if self.missing:
            spread += f", {self.missing} never recovered"
        return (f"  {mark:6} {self.name}: predicted {_fmt(self.predicted)} ({spread}) "
                f"vs limit {_fmt(self.limit)}")


@dataclass(frozen=True)
class GateResult:
    """The gate's figures for one scenario and profile."""

    scenario: str
    profile: str | None
    replications: int
    figures: tuple[Figure, ...]

    @property
    def refused(self) -> bool:
        return any(f.breached for f in self.figures)

    def render(self) -> str:
        verdict = "REFUSED (exit 3; --force overrides)" if self.refused else "pass"
        head = (f"twin gate: {verdict}: {self.scenario} at profile {self.profile}, "
                f"simulator over {self.replications} replications")
        return "\n".join([head, *(f.line() for f in self.figures)])


def _fmt(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.3g}"


def _config_value(config: Mapping[str, Any], key: str, env: Mapping[str, str]) -> Any:
    """A configuration value as Chaos Toolkit resolves it: ``{type: env, key, default}``
    reads the environment; empty means unset."""
    value = config.get(key)
    if isinstance(value, Mapping) and value.get("type") == "env":
        value = env.get(str(value.get("key")), value.get("default"))
    return None if value in (None, "") else value


def safeguards(config: Mapping[str, Any], scenario: Any,
               env: Mapping[str, str] = os.environ) -> Safeguards:
    """The experiment's safeguards from its ``configuration`` (and the environment), the
    abort time defaulting to how long the recovery probe watches: its recovery timeout
    plus sustain, cut at the run's end (:mod:`.timeline`)."""
    from .timeline import scenario_timeline

    def number(key: str, default: float) -> float:
        value = _config_value(config, key, env)
        return float(default if value is None else value)

    rto = [c.value for c in scenario.checks if c.metric.endswith("rto_seconds")]
    recovery = number("omnisql_recovery_timeout", max(rto) if rto else 900.0)
    sustain = number("omnisql_sustain", scenario.slo.sustain)
    timeline = scenario_timeline(scenario, lambda key: _config_value(config, f"omnisql_{key}",
                                                                     env))
    watch = recovery + sustain
    if timeline.injections:
        watch = min(watch, timeline.duration - timeline.injections[0])
    return Safeguards(max_error_rate=number("omnisql_max_error_rate", 0.9),
                      max_zones_lost=int(number("omnisql_max_zones_lost", 1)),
                      abort_seconds=number("omnisql_abort_seconds", watch))


def zones_lost(scenario: Any) -> int:
    """The most zones the scenario's faults take down (counted over the whole run)."""
    if any(f.kind == "region_loss" for f in scenario.faults):
        return len(scenario.topology.zones)
    return len({f.zone for f in scenario.faults if f.kind == "az_loss"})


def _peak_error_rate(run: Any) -> float:
    from labcore.metrics import window_table

    table = window_table(run)
    rates = table.loc[table["measured"], "error_rate"].dropna()
    return float(rates.max()) if len(rates) else 0.0


def _figure(name: str, values: list[float | None], limit: float) -> Figure:
    """Mean and spread; a missing value (never recovered) is infinite."""
    arr = np.asarray([math.inf if v is None or math.isnan(v) else float(v) for v in values])
    missing = int(np.isinf(arr).sum())
    mean = math.inf if missing else float(arr.mean())
    low, high = (float(x) for x in np.percentile(arr, [2.5, 97.5])) if not missing else (
        float(np.min(arr)), math.inf)
    return Figure(name, mean, low, high, float(limit), missing)


def _rto_metric(scenario: Any) -> str:
    """The RTO the experiment measures: its scenario's RTO check (e.g. the victims' of a
    flood, ``tenants_except.<t>.rto_seconds``), else ``rto_seconds``."""
    named = [c.metric for c in scenario.checks if c.metric.endswith("rto_seconds")]
    return named[0] if named else "rto_seconds"


def run_gate(source: Any, guards: Safeguards, replications: int = 10) -> GateResult:
    """Predict the scenario of ``source`` (a ``ScenarioFile``) and judge it against
    ``guards``."""
    from labcore.metrics import compute_metrics
    from sim import run_replications

    from .summary import MIN_REPLICATIONS

    scenario = source.scenario
    runs = run_replications(scenario, replications=max(MIN_REPLICATIONS, int(replications)))
    zones = float(zones_lost(scenario))
    figures = [_figure("peak window error rate", [_peak_error_rate(r) for r in runs],
                       guards.max_error_rate),
               Figure("zones lost", zones, zones, zones, float(guards.max_zones_lost))]
    if scenario.faults:
        metric = _rto_metric(scenario)
        rto = [compute_metrics(r).get(metric) for r in runs]  # type: ignore[arg-type]
        figures.append(_figure(f"{metric} (abort time)", rto, guards.abort_seconds))
    return GateResult(str(source.path), source.profile, len(runs), tuple(figures))
