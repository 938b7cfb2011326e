"""The lab's verdict on a Chaos Toolkit journal: no false greens.

``chaos run`` exits 0 when an action raised and when the before-hypothesis failed (the
method is then skipped). :func:`verdict` reads the journal and lists every reason the run
must not count as a pass; an empty list means it passed. It is a pure function of the
journal and the scenario's checks, used by the control and by the wrapper.

The measuring probes report stand-in values over the experiment's measurement window,
which the metric registry (:mod:`labcore.registry`) counts as scope ``run``. Each check is
judged by :func:`labcore.checks.judge` over its own scope: a check ``over:
outside_recovery`` is "not measured" here (the registry says chaos cannot observe that
scope), never judged on the whole window's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from labcore.checks import Judgement, judge
from labcore.registry import metric_key

__all__ = ["FAULT_FUNCS", "MEASURES", "faults_injected", "judge_checks", "measured", "verdict"]

#: Activities that inject a fault (reported as "faults injected").
FAULT_FUNCS = frozenset({
    "lose_zone", "fail_over_metadata", "fail_over_cache", "expire_tokens", "invalidate_cache",
    "deploy_canary", "start_tenant_flood",
})
#: Probes whose output carries ``measured``: ``{scenario metric: value}``.
MEASURES = frozenset({"measure_recovery", "measure_traffic", "acknowledged_writes_lost"})


def _func(entry: dict[str, Any]) -> str:
    return str(entry.get("activity", {}).get("provider", {}).get("func", ""))


def _last_line(text: Any) -> str:
    text = "".join(text) if isinstance(text, list) else str(text or "")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def measured(journal: dict[str, Any]) -> dict[str, float | None]:
    """``{metric key: value}`` for each scenario metric a probe of the method measured (a
    probe that failed measured its metrics as None: a missing observation never passes).
    Probes measure over scope ``run``: the key is the bare metric name."""
    out: dict[str, float | None] = {}
    for entry in journal.get("run") or []:
        if _func(entry) not in MEASURES:
            continue
        output = entry.get("output")
        if entry.get("status") == "succeeded" and isinstance(output, dict):
            for metric, value in (output.get("measured") or {}).items():
                out[metric_key(metric, "run")] = None if value is None else float(value)
        else:
            out.update(dict.fromkeys(_would_measure(entry)))
    return out


def _would_measure(entry: dict[str, Any]) -> list[str]:
    """The metrics a measuring probe that failed or was interrupted would have measured."""
    args = entry.get("activity", {}).get("provider", {}).get("arguments", {})
    func = _func(entry)
    if func == "measure_recovery":
        return [args.get("metric", "rto_seconds")]
    if func == "acknowledged_writes_lost":
        return ["rpo_seconds"]
    prefix = args.get("prefix", "")
    return [f"{prefix}error_rate", f"{prefix}latency_p95"]


def faults_injected(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """The fault-injecting actions of the method, with their arguments and status."""
    return [{"action": _func(e), "arguments": e["activity"]["provider"].get("arguments", {}),
             "status": e.get("status"), "start": e.get("start"), "end": e.get("end")}
            for e in journal.get("run") or [] if _func(e) in FAULT_FUNCS]


def judge_checks(journal: dict[str, Any], checks: Iterable[Any]) -> Judgement:
    """The scenario's checks judged on what the experiment measured, each over its own
    scope; those chaos cannot observe, or this experiment did not measure, not measured."""
    return judge(checks, measured(journal), "chaos", unmeasured_fails=False)


def verdict(journal: dict[str, Any], checks: Iterable[Any] = ()) -> list[str]:
    """Reasons the run failed (empty: passed). ``checks``: the scenario's ``CheckSpec``s;
    those measured over their own scope are judged by :func:`labcore.checks.judge`."""
    reasons = []
    if journal.get("status") != "completed":
        reasons.append(f"run status is {journal.get('status')!r}")
    before = (journal.get("steady_states") or {}).get("before")
    if before is not None and not before.get("steady_state_met"):
        reasons.append("steady-state hypothesis failed BEFORE the method: method skipped")
    if journal.get("deviated"):
        reasons.append("steady-state hypothesis deviated AFTER the method")
    for kind in ("run", "rollbacks"):
        for entry in journal.get(kind) or []:
            if entry.get("status") != "succeeded":
                name = entry.get("activity", {}).get("name", _func(entry))
                reasons.append(f"{kind[:-1] if kind == 'rollbacks' else 'activity'} {name!r} "
                               f"{entry.get('status')}: {_last_line(entry.get('exception'))}")
    for result in judge_checks(journal, checks).results:
        if not result.passed:
            reasons.append(f"check {result.name!r}: {metric_key(result.metric, result.over)} = "
                           f"{result.observed} is not {result.op} {result.threshold:g}")
    return reasons
