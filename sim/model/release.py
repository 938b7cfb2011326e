"""Releases: a canary judged by an automated analysis, and a blue-green cutover.

**Canary.** From ``release.at`` a share of the attempts reaching the engine is served by
the new version (5% → 25% → 50% → 100% by default). The new version may fail some of
its queries (an engine 5xx, recorded as ``unavailable``; clients may retry it), run
slower, or degrade over time. The analysis sees what a real judge sees: per window,
the attempts each version served, their errors and latencies. A window *fails* when the
canary's error rate exceeds the baseline's by more than the threshold (points, or a
relative increase), when the canary's P95 exceeds its bound, or (optionally) when a
one-sided Mann-Whitney U test finds canary latencies larger. A window with fewer than
``min_samples`` canary attempts is inconclusive. ``failing_windows`` consecutive failing
windows roll back (the share drops to 0); ``windows_per_step`` passing windows move to
the next step, and reaching the last step (100%) is the promotion. Every judged window
is logged with the standard error of the error-rate difference, so that the noise at a
low canary share can be read next to the threshold.

The canary shares the engine workers of each zone (a per-attempt version, not separate
pods). When it starts it stands in front of the gateway's ``forward`` and the engine
stations' ``serve``/``after`` and sets the client's ``observer``, each through its
component's setter, so a run without a release pays one ``is None`` test per attempt and
nothing else.

**Blue-green.** At ``release.at`` new attempts go to green; blue keeps its in-flight
attempts for ``drain_timeout`` and is then torn down: what is still running fails.
Green has blue's capacity (the model does not double the fleet).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from labcore.canary import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    CanaryProgress,
    judge_window,
    metric_failures,
)
from labcore.canary import Tally as _Tally
from labcore.scenario import BlueGreen, Canary

from .request import OK, UNAVAILABLE, Attempt

if TYPE_CHECKING:
    import simpy

    from .system import System

# PASS/FAIL/INCONCLUSIVE and the judge are labcore's, re-exported for the model's readers.
__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "BlueGreenCutover", "CanaryRelease", "judge_window",
           "metric_failures", "start_release"]


def start_release(system: System) -> CanaryRelease | BlueGreenCutover | None:
    """Start the scenario's release process, if it has one."""
    release = system.scenario.release
    if isinstance(release, Canary):
        return CanaryRelease(system, release)
    if isinstance(release, BlueGreen):
        return BlueGreenCutover(system, release)
    return None


class CanaryRelease:
    """The canary's routing, the new version's behaviour, and the analysis loop."""

    def __init__(self, system: System, spec: Canary) -> None:
        self.system, self.spec, self.env = system, spec, system.env
        self.route_rng = system.streams.get("release.canary.routing")
        self.error_rng = system.streams.get("release.canary.errors")
        self.sample_rng = system.streams.get("release.canary.baseline_sample")
        self.share = 0.0
        self.deployed_at = spec.at
        self.version_of: dict[Attempt, bool] = {}  # True: served by the new version
        self.tally = {True: _Tally(), False: _Tally()}
        self.recording = True
        self.exposed = self.exposed_failures = 0
        self.windows: list[dict[str, Any]] = []
        self.env.process(self._run())

    # -- hooks, installed at deployment -----------------------------------------------

    def _install(self) -> None:
        system, new = self.system, self.spec.new_version
        self._forward = system.gateway.set_forward(self._submit)
        system.client.set_observer(self._observed)
        for station in system.engine.stations:
            if new.latency_factor != 1.0:
                station.set_serve(self._slower(station.serve))
            if new.error_rate > 0 or new.degradation > 0:
                station.set_after(self._failing(station.after))

    def _submit(self, attempt: Attempt) -> None:
        canary = self.route_rng.random() < self.share
        self.version_of[attempt] = canary
        if canary and self.recording:
            self.exposed += 1
        self._forward(attempt)

    def _slower(self, serve: Callable[[Attempt], float]) -> Callable[[Attempt], float]:
        factor, version_of = self.spec.new_version.latency_factor, self.version_of
        return lambda attempt: serve(attempt) * (factor if version_of.get(attempt) else 1.0)

    def _failing(self, after: Callable[[Attempt], float | None]) -> Callable[[Attempt], Any]:
        def served(attempt: Attempt) -> float | None:
            if attempt.alive and self.version_of.get(attempt) and (
                self.error_rng.random() < self.error_rate()
            ):
                self.system.client.finish(attempt, UNAVAILABLE)
                return None
            return after(attempt)

        return served

    def error_rate(self) -> float:
        new = self.spec.new_version
        minutes = (self.env.now - self.deployed_at) / 60.0
        return min(1.0, new.error_rate + new.degradation * minutes)

    def _observed(self, attempt: Attempt, outcome: int) -> None:
        """A live attempt ended (the client calls this before it acts on the outcome)."""
        canary = self.version_of.pop(attempt, None)
        if canary is not None and self.recording:
            tally = self.tally[canary]
            tally.n += 1
            if outcome != OK:
                tally.errors += 1
                if canary:
                    self.exposed_failures += 1
            if canary or self.sample_rng.random() < self._keep():
                tally.latencies.append(self.env.now - attempt.start)

    def _keep(self) -> float:
        """Baseline latencies kept for Mann-Whitney: about as many as the canary's."""
        return min(1.0, self.share / max(1e-9, 1.0 - self.share))

    # -- the analysis -----------------------------------------------------------------

    def _window(self) -> Generator[simpy.Event, Any, dict[str, Any]]:
        yield self.env.timeout(self.spec.analysis.window)
        row = judge_window(self.spec, self.tally[True], self.tally[False])
        row.update(time=self.env.now, share=self.share)
        self.windows.append(row)
        self.tally = {True: _Tally(), False: _Tally()}
        return row

    def _run(self) -> Generator[simpy.Event, Any, None]:
        """Deploy at ``release.at``, then judge window after window until a decision; the
        counting (consecutive or Argo's) is :class:`labcore.canary.CanaryProgress`'s."""
        spec = self.spec
        yield self.env.timeout(max(0.0, spec.at - self.env.now))
        self._install()
        progress = CanaryProgress(spec)
        self.share = progress.share
        self.system.mark(spec, f"canary {spec.version} at {self.share:.0%}")
        decision = progress.decision
        while decision is None:
            row = yield from self._window()
            decision = progress.observe(row)
            self.share = progress.share
        if decision != "paused":  # paused: undecided until a human acts (Argo)
            self._decide(decision, progress.share)

    def _decide(self, decision: str, share: float) -> None:
        self.share = share
        self.recording = False
        self.system.mark_end(self.spec)
        self.system.facts["canary.decision_seconds"] = self.env.now - self.spec.at
        self.system.facts[f"canary.{decision}"] = 1.0
        self.decision = decision

    def collect(self) -> None:
        """Write the canary's facts (called once at the end of the run)."""
        facts = self.system.facts
        facts.setdefault("canary.decision_seconds", None)
        for name in ("rolled_back", "promoted"):
            facts.setdefault(f"canary.{name}", 0.0)
        facts["canary.exposed_requests"] = float(self.exposed)
        facts["canary.exposed_failures"] = float(self.exposed_failures)
        judged = [w for w in self.windows if w["verdict"] != INCONCLUSIVE]
        facts["canary.windows"] = float(len(self.windows))
        facts["canary.inconclusive_windows"] = float(len(self.windows) - len(judged))
        first = [w["difference_se"] for w in judged if w["share"] == self.spec.steps[0]]
        facts["canary.window_error_se"] = float(np.median(first)) if first else math.nan
        facts["canary.latency_p95"] = max((w["canary_p95"] for w in judged), default=math.nan)
        facts["canary.latency_p99"] = max((w["canary_p99"] for w in judged), default=math.nan)
        self.system.logs["canary_windows"] = self.windows


class BlueGreenCutover:
    """Switch new attempts to green; tear blue down after its drain timeout."""

    POLL = 0.1  # seconds between drain checks (the drain time is this precise)

    def __init__(self, system: System, spec: BlueGreen) -> None:
        self.system, self.spec, self.env = system, spec, system.env
        self.env.process(self._run())

    def _run(self) -> Generator[simpy.Event, Any, None]:
        spec, system, facts = self.spec, self.system, self.system.facts
        yield self.env.timeout(max(0.0, spec.at - self.env.now))
        blue = system.client.inflight()
        facts["cutover.inflight_at_switch"] = float(len(blue))
        system.mark(spec, f"blue-green cutover to {spec.version}, drain {spec.drain_timeout:g}s")
        deadline = self.env.now + spec.drain_timeout
        while self.env.now < deadline - 1e-9:
            blue = [a for a in blue if a.alive]
            if not blue:
                break
            yield self.env.timeout(min(self.POLL, deadline - self.env.now))
        blue = [a for a in blue if a.alive]
        for attempt in blue:
            system.client.finish(attempt, UNAVAILABLE)  # blue is torn down under them
        facts["cutover.dropped_requests"] = float(len(blue))
        facts["cutover.drain_seconds"] = None if blue else self.env.now - spec.at
        system.mark_end(spec)

    def collect(self) -> None:
        for name in ("cutover.inflight_at_switch", "cutover.dropped_requests",
                     "cutover.drain_seconds"):
            self.system.facts.setdefault(name, None)
