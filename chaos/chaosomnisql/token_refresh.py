"""SOP-103 on the scenario's timeline: the bulk token refresh as the runbook runs it.

:func:`bulk_refresh_tokens` is the scenario's ``token_refresh`` mitigation acted out. It
runs in the background of the method (``background: true``) while
:func:`~chaosomnisql.probes.measure_recovery` judges the windows: it waits the operator's
delay after the token revocation (the simulator's ``mitigation.start``: the fault's start
plus ``operator_delay``), asks the target for the refresh at the token endpoint's ``rate``,
``tokens_per_tenant`` tokens per tenant, tenant after tenant (on the stand-in:
``sandbox/admin/token_refresh.py``), and waits for it to finish. It reports the
``mitigation.token_refresh.in_effect_seconds`` the target measured (from the job's start to
its last token) and the tokens renewed, and puts them in the run's window facts.

Short mode (CI) shortens the plan with ``omnisql_operator_delay`` and
``omnisql_refresh_tokens_per_tenant``; a refresh of fewer tokens than the scenario's is not
the scenario's, so it measures nothing (the output says why). A rollback's unpaced refresh
(the revocation marked restored in the ledger) ends the wait: nothing is started after it.
"""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from . import ledger
from .api import admin_call
from .settings import setting

__all__ = ["REFRESH_METRICS", "bulk_refresh_tokens", "refresh_measured"]

#: What :func:`bulk_refresh_tokens` measures (registered for chaos in labcore/registry.py).
REFRESH_METRICS = ("mitigation.token_refresh.in_effect_seconds", "token_refresh.tokens")
#: Seconds past the plan's own length allowed for the job to finish (a loaded machine).
GRACE = 60.0


def refresh_measured(job: dict[str, Any], full: bool) -> dict[str, float | None]:
    """The metrics of a finished job (empty: not the scenario's plan, or it failed)."""
    if not full or job.get("state") != "done":
        return {}
    return {"mitigation.token_refresh.in_effect_seconds": float(job["in_effect_seconds"]),
            "token_refresh.tokens": float(job["tokens"])}


def _revocation(provider: str) -> ledger.FaultRecord:
    record = next((r for r in reversed(ledger.LEDGER.faults)
                   if (r.kind, r.target) == ("token_revocation", provider)), None)
    if record is None:
        raise ActivityFailed(f"no {provider} token revocation before the bulk refresh")
    return record


def _job(provider: str, configuration: Configuration) -> dict[str, Any]:
    jobs = admin_call("GET", "/admin/tokens/refresh", configuration).get("jobs") or {}
    job = jobs.get(provider)
    if job is None:
        raise ActivityFailed(f"the target reports no paced {provider} refresh")
    return dict(job)


def _finish(provider: str, deadline: float, record: ledger.FaultRecord, poll: float,
            configuration: Configuration) -> dict[str, Any]:
    while True:
        job = _job(provider, configuration)
        if job.get("state") != "running" or time.monotonic() >= deadline:
            return job
        if not ledger.wait_until(min(deadline, time.monotonic() + poll), record, poll):
            return _job(provider, configuration)


def bulk_refresh_tokens(provider: str, rate: float, tokens_per_tenant: int,
                        operator_delay: float, poll: float = 1.0,
                        configuration: Configuration = None,
                        secrets: Secrets = None) -> dict[str, Any]:
    """SOP-103 after ``operator_delay`` seconds: ``tokens_per_tenant`` tokens per tenant at
    ``rate`` a second (the scenario's ``token_refresh``; see the module)."""
    record = _revocation(provider)
    delay = float(setting(configuration, "operator_delay") or operator_delay)
    per_tenant = int(setting(configuration, "refresh_tokens_per_tenant") or tokens_per_tenant)
    if not ledger.wait_until(record.started_at + delay, record, poll):
        return {"started": False, "note": "the tokens were restored first", "measured": {}}
    plan = admin_call("POST", "/admin/tokens/refresh", configuration,
                      {"provider": provider, "rate": float(rate),
                       "tokens_per_tenant": per_tenant})
    deadline = time.monotonic() + float(plan["expected_seconds"]) + GRACE
    job = _finish(provider, deadline, record, poll, configuration)
    full = per_tenant == int(tokens_per_tenant)
    measured = refresh_measured(job, full)
    ledger.LEDGER.running.setdefault("run_facts", {}).update(measured)  # into facts.npz
    note = None if measured else (
        f"{per_tenant} tokens per tenant (omnisql_refresh_tokens_per_tenant), not the "
        f"scenario's {tokens_per_tenant}: not measured" if not full
        else f"the refresh did not finish: {job.get('state')} {job.get('error') or ''}".strip())
    return {"started": True, "operator_delay": delay, "job": job, "note": note,
            "measured": measured}
