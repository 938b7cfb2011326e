"""The run's windows as the lab's window facts, and the metrics the chaos verdict judges.

The background load and any tenant flood record every answer in one
:class:`loadtests.recorder.ClientRecorder` on the run's clock (seconds since the load
started, :attr:`RunWindows.origin`). At the end of the run :meth:`RunWindows.facts` turns
them into :class:`labcore.facts.RunFacts` of the *measured scenario*: the scenario with the
run's own window, warm-up, sustain and length (short mode shrinks them), its fault marks
taken from what this run injected and when (the :mod:`.ledger`), and the RPO the failover
probe measured. The verdict's numbers are :func:`labcore.checks.scoped_metrics` of those
facts: the simulator's metric code (pooled percentiles, scopes, the RTO rule), not a
re-derivation from the stand-in's stats. ``facts.npz`` (:func:`labcore.facts.save_facts`)
in the run's results folder is what ``python -m sim conform`` reads back.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labcore.checks import scoped_metrics
from labcore.facts import TIER_FIELDS, FaultMark, RunFacts, save_facts
from labcore.registry import metric_key
from loadtests.recorder import ClientRecorder

from .ledger import FaultRecord

__all__ = ["HEADLINE", "RunWindows", "fault_marks", "measured_metrics", "measured_scenario"]

#: Metrics reported beside the checks' (over ``run``) whatever the scenario checks.
HEADLINE = ("requests", "error_rate", "latency_p95", "rto_seconds", "rpo_seconds")


def measured_scenario(scenario: Any, window: float, warmup: float, sustain: float,
                      duration: float) -> Any:
    """``scenario`` with the run's window, warm-up, SLO sustain and length: what the metrics
    need to read the run's windows as the simulator reads its own. An explicit
    ``run.incident`` is dropped: its times are on the scenario's clock, not this run's."""
    run = scenario.run.model_copy(update={
        "window": float(window), "warmup": float(warmup), "duration": float(duration),
        "incident": None})
    slo = scenario.slo.model_copy(update={"sustain": float(sustain)})
    return scenario.model_copy(update={"run": run, "slo": slo})


def fault_marks(records: list[FaultRecord], origin: float) -> tuple[FaultMark, ...]:
    """What the run injected, on its clock: a fault not restored yet has no end."""
    return tuple(
        FaultMark(r.kind, r.started_at - origin,
                  None if r.restored_at is None else r.restored_at - origin,
                  f"{r.kind} {r.target}")
        for r in records)


@dataclass
class RunWindows:
    """One run's client windows: the recorder the loads share, and the run's clock."""

    scenario: Any
    window: float
    warmup: float
    sustain: float
    #: The run's length (``run.duration``): windows past it are not measured.
    duration: float | None = None
    origin: float = field(default_factory=time.monotonic)
    recorder: ClientRecorder = field(init=False)
    #: ``{tier: {window: TIER_FIELDS sums}}`` the target's pools reported (.counters).
    tiers: dict[str, dict[int, np.ndarray]] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.recorder = ClientRecorder(tuple(self.scenario.workload.tenants), self.window)

    def request(self, t: float, tenant: str, latency: float, outcome: str) -> None:
        """One answer (the loads record from several threads: one lock for all)."""
        with self._lock:
            self.recorder.request(t, tenant, latency, outcome)

    def count(self, t: float, name: str, n: int = 1) -> None:
        with self._lock:
            self.recorder.count(t, name, n)

    def tier(self, t: float, name: str, values: dict[str, float]) -> None:
        """Add ``values`` (some of :data:`labcore.facts.TIER_FIELDS`) to tier ``name`` in
        the window holding ``t``: the simulator's station integrals, read off the target."""
        k = int(t // self.window)
        with self._lock:
            row = self.tiers.setdefault(name, {}).setdefault(k, np.zeros(len(TIER_FIELDS)))
            for i, key in enumerate(TIER_FIELDS):
                row[i] += float(values.get(key, 0.0))

    def _add_tiers(self, arrays: dict[str, Any]) -> None:
        names = sorted(self.tiers)
        tiers = np.zeros((len(arrays["start"]), len(names), len(TIER_FIELDS)))
        for j, name in enumerate(names):
            for k, row in self.tiers[name].items():
                if k < len(tiers):
                    tiers[k, j] = row
        arrays["tier_names"], arrays["tiers"] = names, tiers

    def now(self) -> float:
        return time.monotonic() - self.origin

    def facts(self, records: list[FaultRecord], rpo_seconds: float | None = None,
              elapsed: float | None = None, seed: int = 0,
              whole: dict[str, float | None] | None = None) -> RunFacts | None:
        """The window facts of the whole windows so far, up to the run's ``duration``
        (None: not one measured window); ``whole``: whole-run facts a probe measured (the
        canary's decision)."""
        elapsed = self.now() if elapsed is None else elapsed
        if self.duration is not None:
            elapsed = min(elapsed, self.duration)
        if elapsed < self.warmup + self.window:
            return None
        scenario = measured_scenario(self.scenario, self.window, self.warmup, self.sustain,
                                     elapsed)
        with self._lock:
            facts = self.recorder.window_facts(scenario, elapsed, seed)
            self._add_tiers(facts.arrays)
        marks = fault_marks(records, self.origin)
        losses = () if rpo_seconds is None or not marks else ((marks[0].start, rpo_seconds),)
        return RunFacts(scenario=scenario, seed=seed, arrays=facts.arrays, marks=marks,
                        tenants=facts.tenants, rpo_losses=losses, facts=dict(whole or {}))

    def save(self, facts: RunFacts, directory: str | Path) -> Path:
        """``facts.npz`` in ``directory`` (created if needed)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        save_facts(path / "facts.npz", facts)
        return path / "facts.npz"


def _clean(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def measured_metrics(facts: RunFacts, checks: Any) -> dict[str, float | None]:
    """``{metric key: value}`` for each check (over its own scope) and the headline
    metrics, from ``facts`` with the simulator's code; NaN (no traffic) is None."""
    checks = tuple(checks)
    metrics = scoped_metrics(facts, checks)
    keys = {metric_key(c.metric, c.over) for c in checks} | set(HEADLINE)
    return {key: _clean(metrics[key]) for key in sorted(keys) if key in metrics}
