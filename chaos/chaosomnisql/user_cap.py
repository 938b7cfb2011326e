"""SOP-101 acted out as a scenario's ``user_cap`` mitigation states it (issue 18).

:func:`cap_users_after_delay` is the operator's cap on the flooding tenant's users: it
waits the scenario's ``operator_delay`` after the flood started (the simulator's
``mitigation.start``: the fault's start plus the delay), then sets the cap through the
admin API (``POST /admin/caps``, :func:`.actions.apply_concurrency_cap`). The method runs
it in the background while recovery is measured. The stand-in cannot set such a cap when
the scenario is applied (it starts later: docs/sandbox.md lists it as the runner's).

The cap is temporary as the scenario says: lifted its ``duration`` after it was set
(:func:`.actions.clear_concurrency_cap`), but never past the run's end (a short run ends
first); the rollbacks lift it too. Short mode (CI) shortens the delay with
``omnisql_operator_delay``.
"""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from . import ledger
from .actions import apply_concurrency_cap, clear_concurrency_cap
from .settings import scenario_file, setting
from .timeline import run_end

__all__ = ["cap_users_after_delay"]


def _lasts(tenant: str, configuration: Configuration) -> float | None:
    """The scenario's cap duration on ``tenant`` (None: kept)."""
    scenario = scenario_file(configuration).scenario
    return next((m.duration for m in scenario.mitigations
                 if m.kind == "user_cap" and m.tenant == tenant), None)


def cap_users_after_delay(tenant: str, user: str, max_concurrency: int, operator_delay: float,
                          poll: float = 1.0, configuration: Configuration = None,
                          secrets: Secrets = None) -> dict[str, Any]:
    """Cap ``tenant``'s ``user`` (``*``: every user) at ``max_concurrency`` queries in flight,
    ``operator_delay`` seconds after the flood from ``tenant`` started (see the module)."""
    record = next((r for r in reversed(ledger.LEDGER.faults)
                   if r.kind == "traffic_surge" and r.target == tenant), None)
    if record is None:
        raise ActivityFailed(f"no flood from {tenant!r} was started before its cap")
    delay = float(setting(configuration, "operator_delay") or operator_delay)
    if not ledger.wait_until(record.started_at + delay, record, poll):
        return {"applied": False, "operator_delay": delay}
    answer = apply_concurrency_cap(tenant, user, max_concurrency, configuration, secrets)
    lasts, end = _lasts(tenant, configuration), run_end(configuration)
    lift = None if lasts is None else time.monotonic() + lasts
    if lift is None or (end is not None and lift >= end):
        return {"applied": True, "operator_delay": delay, "lifted": False, "answer": answer}
    ledger.wait_until(lift, None, poll)
    clear_concurrency_cap(tenant, user, configuration, secrets)
    return {"applied": True, "operator_delay": delay, "lifted": True, "answer": answer}
