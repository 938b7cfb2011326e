"""The run's timeline: the scenario's, at its profile, on the run's clock (issue 18).

The simulator runs a scenario from t=0 to ``run.duration``, measures ``[run.warmup,
run.duration]`` and injects each fault at its ``at``. A chaos run follows the same
timeline, t=0 being the start of the background load (:mod:`.controls.load`): the load
control waits until just before the first injection (:data:`HYPOTHESIS_LEAD`, so that the
steady-state hypothesis judges the system right before it), the method's
:func:`wait_for_fault` sleeps until the fault's own time, the recovery probe never waits
past the run's end, and :func:`run_until_end` keeps the load and the measurement going
until ``run.duration`` however early recovery came. The rollbacks run after that.

Short mode (CI) compresses it with two settings: ``omnisql_load_seconds`` (the run's
length) and ``omnisql_fault_at`` (when the first fault is injected; later faults keep
their distance from it). Empty means the scenario's own ``run.duration`` and ``at``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from . import ledger
from .settings import scenario_file, setting

__all__ = ["HYPOTHESIS_LEAD", "LOAD_TAIL", "Timeline", "injection_times", "run_clock", "run_end",
           "run_timeline", "run_until_end", "scenario_timeline", "wait_for_fault"]

#: Seconds before the first injection at which the steady-state hypothesis starts: its
#: probes take well under a second on the stand-in (the metadata writer started before a
#: zone or region loss pauses 1 s); the rest is room for a loaded machine.
HYPOTHESIS_LEAD = 5.0
#: Seconds the load goes on past the run's end, unmeasured (the windows stop at
#: ``run.duration``): traffic for what the method does after the run (restoring a zone,
#: rebuilding a replica) and for the after hypothesis; the after-experiment control stops
#: it sooner, after the rollbacks.
LOAD_TAIL = 180.0
#: The ledger's key of the run's :class:`~chaosomnisql.windows.RunWindows` (its clock).
_WINDOWS = "windows"


def injection_times(scenario: Any) -> tuple[float, ...]:
    """Scenario times of the injections: each fault's ``at``, else the release's."""
    times = [float(f.at) for f in scenario.faults]
    release_at = getattr(scenario.release, "at", None)
    if not times and release_at is not None:
        times = [float(release_at)]
    return tuple(times)


@dataclass(frozen=True)
class Timeline:
    """When things happen, in seconds since the load started (the run's clock)."""

    warmup: float
    duration: float
    injections: tuple[float, ...]

    def fault_at(self, index: int = 0) -> float:
        """Run time of injection ``index`` (refused if the scenario has none such)."""
        if not 0 <= index < len(self.injections):
            raise ActivityFailed(f"the scenario has no fault #{index} "
                                 f"({len(self.injections)} injection(s))")
        return self.injections[index]

    @property
    def hypothesis_at(self) -> float:
        """When the steady-state hypothesis runs: just before the first injection, and
        after the warm-up when the fault comes later than it (else at the warm-up's end)."""
        if not self.injections:
            return min(self.warmup, self.duration)
        first = self.injections[0]
        return max(0.0, first - HYPOTHESIS_LEAD, min(self.warmup, first))


def scenario_timeline(scenario: Any, get: Callable[[str], Any]) -> Timeline:
    """The timeline of ``scenario`` with the run's overrides; ``get(key)`` reads the
    ``omnisql_<key>`` setting (None or "" when unset): ``warmup``, ``load_seconds`` (the
    run's length) and ``fault_at`` (the first injection's time)."""
    def number(key: str, default: float) -> float:
        value = get(key)
        return float(default) if value in (None, "") else float(value)

    times = injection_times(scenario)
    shift = number("fault_at", times[0]) - times[0] if times else 0.0
    return Timeline(warmup=number("warmup", scenario.run.warmup),
                    duration=number("load_seconds", scenario.run.duration),
                    injections=tuple(t + shift for t in times))


def run_timeline(configuration: Configuration) -> Timeline:
    """The experiment's timeline from its configuration (see :func:`scenario_timeline`)."""
    scenario = scenario_file(configuration).scenario
    return scenario_timeline(scenario, lambda key: setting(configuration, key))


def run_clock() -> float | None:
    """``time.monotonic()`` of the run's t=0 (the load's start); None without the load
    control (no run clock: nothing to wait for)."""
    windows = ledger.LEDGER.running.get(_WINDOWS)
    return None if windows is None else float(windows.origin)


def run_end(configuration: Configuration) -> float | None:
    """``time.monotonic()`` at which the run ends (None without a run clock)."""
    origin = run_clock()
    return None if origin is None else origin + run_timeline(configuration).duration


def wait_for_fault(fault: int = 0, configuration: Configuration = None,
                   secrets: Secrets = None) -> dict[str, Any]:
    """Sleep until the scenario's fault number ``fault`` (its ``faults[fault].at``, or the
    release's time) on the run's clock; the next action injects it. Refused when that
    time is at or after the run's end. Without the load control (no run clock) it returns
    at once. The output says when the fault was due and how late this call returned."""
    timeline = run_timeline(configuration)
    at = timeline.fault_at(int(fault))
    if at >= timeline.duration:
        raise ActivityFailed(f"fault #{fault} is due at {at:g} s, not before the run's end "
                             f"({timeline.duration:g} s)")
    origin = run_clock()
    if origin is None:
        return {"due_at": at, "waited": 0.0, "late_by": None, "note": "no run clock"}
    wait = max(0.0, origin + at - time.monotonic())
    time.sleep(wait)
    late = time.monotonic() - origin - at
    return {"due_at": at, "waited": round(wait, 3), "late_by": round(late, 3)}


def run_until_end(configuration: Configuration = None,
                  secrets: Secrets = None) -> dict[str, Any]:
    """Sleep until the run's end (``run.duration`` on the run's clock, or
    ``omnisql_load_seconds``): the load and the windows go on however early recovery
    came, as in the simulator. Returns at once without a run clock."""
    timeline = run_timeline(configuration)
    origin = run_clock()
    if origin is None:
        return {"ends_at": timeline.duration, "waited": 0.0, "note": "no run clock"}
    wait = max(0.0, origin + timeline.duration - time.monotonic())
    time.sleep(wait)
    return {"ends_at": timeline.duration, "waited": round(wait, 3)}
