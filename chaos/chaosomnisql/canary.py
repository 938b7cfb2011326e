"""The canary's own checks: the target's analysis decision, its time and the exposure.

After :func:`chaosomnisql.actions.deploy_canary` the target runs the scenario's canary
analysis (on the stand-in: ``sandbox/admin/canary.py``, the simulator's rule from
``labcore.canary``) and reports it on ``GET /admin/canary`` under ``analysis``.
:func:`measure_canary` waits for the decision, at most the scenario's own limit (its
``canary.decision_seconds`` check, else until the run would end), and reports the
``canary.*`` metrics the registry lets chaos observe. Undecided at the scenario's limit is
a measurement (not rolled back, no decision time); undecided when a shorter limit
(``omnisql_canary_timeout``, short mode) ran out is not: those metrics are then left
unmeasured, and the output says why.
"""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from labcore.scenario import Canary

from . import ledger
from .api import admin_call
from .settings import scenario_file, setting
from .timeline import run_end

__all__ = ["CANARY_METRICS", "GRACE", "canary_measured", "decision_limit", "measure_canary",
           "scenario_limit"]

#: What :func:`measure_canary` measures (registered for chaos in labcore/registry.py).
CANARY_METRICS = ("canary.rolled_back", "canary.promoted", "canary.decision_seconds",
                  "canary.exposed_requests", "canary.exposed_failures")
#: Seconds past the limit allowed for the last window's judgement to arrive.
GRACE = 5.0


def scenario_limit(scenario: Any) -> float:
    """The scenario's own limit for the decision: its decision check, else the rest of the
    run after ``release.at``."""
    checks = [c.value for c in scenario.checks if c.metric == "canary.decision_seconds"]
    release = scenario.release
    at = release.at if isinstance(release, Canary) else 0.0
    return float(checks[0] if checks else scenario.run.duration - at)


def decision_limit(configuration: Configuration) -> tuple[float, bool]:
    """How long after the deployment the decision is waited for, and whether that is the
    scenario's own limit (:func:`scenario_limit`)."""
    own = scenario_limit(scenario_file(configuration).scenario)
    short = setting(configuration, "canary_timeout")
    if short is None or float(short) >= own:
        return own, True
    return float(short), False


def canary_measured(analysis: dict[str, Any], full: bool) -> dict[str, float | None]:
    """The ``canary.*`` metrics of the target's analysis (empty: not measured)."""
    decision = analysis.get("decision")
    if decision not in ("rolled_back", "promoted") and not full:
        return {}
    seconds = analysis.get("decision_seconds") if decision in ("rolled_back", "promoted") else None
    return {"canary.rolled_back": 1.0 if decision == "rolled_back" else 0.0,
            "canary.promoted": 1.0 if decision == "promoted" else 0.0,
            "canary.decision_seconds": None if seconds is None else float(seconds),
            "canary.exposed_requests": float(analysis.get("exposed_requests") or 0),
            "canary.exposed_failures": float(analysis.get("exposed_failures") or 0)}


def _wait(deadline: float, poll: float, configuration: Configuration) -> dict[str, Any]:
    while True:
        analysis = admin_call("GET", "/admin/canary", configuration).get("analysis")
        if analysis is None:
            raise ActivityFailed("the target runs no canary analysis for this deployment")
        if analysis.get("decision") is not None or time.monotonic() >= deadline:
            return dict(analysis)
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))


def measure_canary(poll: float = 1.0, configuration: Configuration = None,
                   secrets: Secrets = None) -> dict[str, Any]:
    """Wait for the target's canary decision (see the module); the ``canary.*`` metrics."""
    record = ledger.LEDGER.last("canary")
    if record is None:
        raise ActivityFailed("no canary was deployed before measure_canary")
    limit, full = decision_limit(configuration)
    deadline = record.started_at + limit + GRACE
    end = run_end(configuration)  # never past the run's end (.timeline)
    analysis = _wait(deadline if end is None else min(deadline, end), poll, configuration)
    decision, seconds = analysis.get("decision"), analysis.get("decision_seconds")
    if decision == "rolled_back" and seconds is not None:  # the fault ended at the decision
        ledger.LEDGER.restored("canary", record.target, record.started_at + float(seconds))
    measured = canary_measured(analysis, full)
    # Into the run's window facts (facts.npz), as the simulator's run has them.
    ledger.LEDGER.running.setdefault("run_facts", {}).update(measured)
    note = None if measured else (
        f"undecided after {limit:g} s (omnisql_canary_timeout), before the scenario's own "
        "limit: not measured")
    return {"decision": decision, "decision_seconds": seconds, "limit_seconds": limit,
            "windows": [{k: w.get(k) for k in ("time", "share", "canary_n", "canary_errors",
                                               "difference", "canary_p95", "verdict")}
                        for w in analysis.get("windows") or []],
            "note": note, "measured": measured}
