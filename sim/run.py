"""Running a scenario: one seed in, one :class:`RunResult` out.

``simulate`` builds the system in a fresh SimPy environment with its own named streams,
runs it for ``run.duration`` and returns the recorder's windows (no module state, no
global seeding). ``replication_seeds`` derives the seeds of replications.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import simpy

from labcore.facts import OUTCOMES
from labcore.scenario import Scenario

from .kernel import Environment, Recorder, Streams, derive_seed
from .model import FaultMark, System

__all__ = ["RunResult", "build", "simulate", "replication_seeds", "run_replications"]


@dataclass(frozen=True)
class RunResult:
    """What one run produced: per-window arrays, the fault timeline, metadata losses."""

    scenario: Scenario
    seed: int
    arrays: dict[str, Any]
    marks: tuple[FaultMark, ...]
    rpo_losses: tuple[tuple[float, float], ...]
    tenants: tuple[str, ...]
    trace: tuple[tuple[float, int, str], ...] | None = field(default=None, repr=False)
    #: Scalar metrics and tables of releases and failovers (see ``System.facts``).
    facts: dict[str, float | None] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def requests(self) -> int:
        return int(self.arrays["outcomes"].sum())


def replication_seeds(seed: int, replications: int) -> list[int]:
    """Replication 0 runs ``seed`` itself; the others get seeds derived from it."""
    return [seed] + [derive_seed(seed, "replication", r) % 2**31 for r in range(1, replications)]


def build(scenario: Scenario, seed: int,
          trace: bool = False) -> tuple[Environment, Recorder, System]:
    """The system of ``scenario`` at ``seed``, in a fresh environment at time 0, with the
    recorder of its windows: what :func:`simulate` runs (``sim.scale`` runs it by parts)."""
    env = Environment(collect_every=scenario.run.window)
    recorder = Recorder(env, scenario.run.window, list(scenario.workload.tenants), trace,
                        outcomes=OUTCOMES, wait_histograms=scenario.run.wait_histograms,
                        windows=math.ceil(scenario.run.duration / scenario.run.window) + 1)
    return env, recorder, System(env, scenario, Streams(seed), recorder)


def simulate(
    scenario: Scenario,
    seed: int | None = None,
    trace: bool = False,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run ``scenario`` once with ``seed`` (default: the scenario's ``run.seed``)."""
    seed = scenario.run.seed if seed is None else seed
    env, recorder, system = build(scenario, seed, trace)
    if progress is not None:
        env.process(_report_progress(env, scenario.run.duration, progress))
    env.run(until=scenario.run.duration)
    recorder.close_window()
    system.collect()
    return RunResult(
        scenario=scenario,
        seed=seed,
        arrays=recorder.arrays(),
        marks=tuple(system.marks),
        rpo_losses=tuple(system.metadata.losses),
        tenants=tuple(system.tenant_names),
        trace=tuple(recorder.trace) if recorder.trace is not None else None,
        facts=dict(system.facts),
        logs=dict(system.logs),
    )


def _report_progress(env: simpy.Environment, duration: float, report: Callable[[float], None]):
    step = duration / 100.0
    while True:
        yield env.timeout(step)
        report(min(1.0, env.now / duration))


def run_replications(
    scenario: Scenario,
    seed: int | None = None,
    replications: int | None = None,
    jobs: int = 1,
    on_done: Callable[[int, RunResult], None] | None = None,
    on_progress: Callable[[int, float], None] | None = None,
) -> list[RunResult]:
    """Run the replications of a scenario, in ``jobs`` worker processes if > 1.

    Results come back in replication order whatever the executor, so the output does
    not depend on ``jobs``. ``on_progress(replication, fraction)`` reports simulated
    time in serial runs (it changes no result).
    """
    seed = scenario.run.seed if seed is None else seed
    replications = scenario.run.replications if replications is None else replications
    seeds = replication_seeds(seed, replications)
    results: list[RunResult | None] = [None] * len(seeds)
    if jobs <= 1 or len(seeds) == 1:
        for i, s in enumerate(seeds):
            report = (lambda f, i=i: on_progress(i, f)) if on_progress else None
            results[i] = simulate(scenario, s, progress=report)
            if on_done:
                on_done(i, results[i])  # type: ignore[arg-type]
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(simulate, scenario, s): i for i, s in enumerate(seeds)}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if on_done:
                    on_done(i, results[i])  # type: ignore[arg-type]
    return [r for r in results if r is not None]
