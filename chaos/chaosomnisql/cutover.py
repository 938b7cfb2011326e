"""The blue-green cutover: performed at the scenario's ``release.at``, its facts read back.

:func:`cut_over_release` (an action, after :func:`~chaosomnisql.timeline.wait_for_fault`,
which waits for the release's time when the scenario has no fault) asks the target for a
cutover to the scenario's ``release.version`` with its ``drain_timeout``; on the stand-in
``POST /admin/release/cutover`` (``sandbox/admin/release.py``): green engines take every
new attempt from the switch, blue drains and is torn down at the deadline, cutting what it
still runs. :func:`measure_cutover` waits for the drain's end (at most ``drain_timeout``
and :data:`GRACE`, never past the run's end) and reports the simulator's ``cutover.*``
facts as the gateway measured them (:func:`labcore.cutover.cutover_facts`, which Locust
uses too). A drain still running when the wait ends is not a
measurement: the facts are then left unmeasured and the output says why.
"""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from labcore.cutover import CUTOVER_METRICS, RELEASE_PATH
from labcore.cutover import cutover_facts as cutover_measured
from labcore.scenario import BlueGreen

from . import ledger
from .api import admin_call
from .settings import scenario_file
from .timeline import run_end

__all__ = ["CUTOVER_METRICS", "GRACE", "KIND", "cut_over_release", "cutover_measured",
           "measure_cutover", "scenario_release"]

#: Seconds past the drain's deadline allowed for the gateway's teardown to be reported.
GRACE = 5.0
#: The ledger's (and the simulator's fault marks') name of the cutover.
KIND = "blue_green"


def scenario_release(configuration: Configuration) -> BlueGreen:
    """The scenario's blue-green release (refused when it has another or none)."""
    release = scenario_file(configuration).scenario.release
    if not isinstance(release, BlueGreen):
        raise ActivityFailed("the scenario has no blue_green release to cut over")
    return release


def cut_over_release(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Cut over to the scenario's ``release.version``: new attempts go to green from now,
    blue drains for the scenario's ``release.drain_timeout`` and is then torn down."""
    release = scenario_release(configuration)
    ledger.LEDGER.injected(KIND, release.version)
    return admin_call("POST", "/admin/release/cutover", configuration,
                      {"version": release.version, "drain_timeout": release.drain_timeout})


def _wait(deadline: float, poll: float, configuration: Configuration) -> dict[str, Any]:
    while True:
        status: dict[str, Any] = admin_call("GET", RELEASE_PATH, configuration)
        if status.get("phase") != "draining" or time.monotonic() >= deadline:
            return status
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))


def measure_cutover(poll: float = 0.5, configuration: Configuration = None,
                    secrets: Secrets = None) -> dict[str, Any]:
    """Wait for the cutover's drain to end (see the module); the ``cutover.*`` metrics."""
    record = ledger.LEDGER.last(KIND)
    if record is None:
        raise ActivityFailed("no cutover was made before measure_cutover")
    limit = scenario_release(configuration).drain_timeout
    deadline = record.started_at + limit + GRACE
    end = run_end(configuration)  # never past the run's end (.timeline)
    status = _wait(deadline if end is None else min(deadline, end), poll, configuration)
    measured = cutover_measured(status)
    if measured:  # the cutover's mark ends with the drain, as the simulator's does
        drained = measured["cutover.drain_seconds"]
        ledger.LEDGER.restored(KIND, record.target,
                               record.started_at + (limit if drained is None else drained))
    # Into the run's window facts (facts.npz), as the simulator's run has them.
    ledger.LEDGER.running.setdefault("run_facts", {}).update(measured)
    note = None if measured else (
        f"the drain was still running (phase {status.get('phase')!r}) when the wait ended: "
        "not measured")
    return {**{k: status.get(k) for k in ("active", "phase", "version", "drain_timeout")},
            "note": note, "measured": measured}
