"""The lab's verdict on a Chaos Toolkit journal: no false greens.

``chaos run`` exits 0 when an action raised and when the before-hypothesis failed (the
method is then skipped). :func:`verdict` reads the journal and lists every reason the run
must not count as a pass; an empty list means it passed. It is a pure function of the
journal and the scenario's checks, used by the control and by the wrapper.

The numbers judged are those of the run's window facts (the journal's
``omnisql_windows.measured``, written by the load control: the load's client windows
through the simulator's metric code, each check over its own scope, see
:mod:`chaosomnisql.windows`). A metric the windows lack (a journal without them, or the
RPO of a run too short for one window) falls back to the measuring probes' value over
scope ``run`` (the stand-in's stats). Each check is judged by :func:`labcore.checks.judge`
over its own scope: a check neither measured over its scope is "not measured", never
judged on another scope's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from labcore.checks import Judgement, judge
from labcore.registry import metric_key

from .canary import CANARY_METRICS
from .cutover import CUTOVER_METRICS
from .token_refresh import REFRESH_METRICS

__all__ = ["FAULT_FUNCS", "MEASURES", "fault_mismatch", "fault_timed", "faults_injected",
           "judge_checks", "measured", "probe_measured", "verdict", "window_measured"]

#: Activities that inject a fault (reported as "faults injected").
FAULT_FUNCS = frozenset({
    "lose_zone", "lose_region", "fail_over_metadata", "fail_over_cache", "expire_tokens",
    "invalidate_cache", "deploy_canary", "start_tenant_flood", "cut_over_release",
    "inject_provider_latency",
})
#: Probes whose output carries ``measured``: ``{scenario metric: value}``.
MEASURES = frozenset({"measure_recovery", "measure_traffic", "acknowledged_writes_lost",
                      "measure_canary", "bulk_refresh_tokens", "measure_cutover"})


def _func(entry: dict[str, Any]) -> str:
    return str(entry.get("activity", {}).get("provider", {}).get("func", ""))


def _last_line(text: Any) -> str:
    text = "".join(text) if isinstance(text, list) else str(text or "")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def measured(journal: dict[str, Any]) -> dict[str, float | None]:
    """``{metric key: value}`` the verdict judges: the window facts' values, and the
    probes' for metrics the window facts lack."""
    return {**probe_measured(journal), **window_measured(journal)}


def window_measured(journal: dict[str, Any]) -> dict[str, float | None]:
    """``{metric key: value}`` of the run's window facts (empty without them)."""
    windows = journal.get("omnisql_windows") or {}
    return {k: None if v is None else float(v) for k, v in (windows.get("measured") or {}).items()}


def probe_measured(journal: dict[str, Any]) -> dict[str, float | None]:
    """``{metric key: value}`` for each scenario metric a probe of the method measured (a
    probe that failed measured its metrics as None: a missing observation never passes).
    Probes read the stand-in's stats over scope ``run``: the key is the bare metric name."""
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
    if func == "measure_canary":
        return list(CANARY_METRICS)
    if func == "measure_cutover":
        return list(CUTOVER_METRICS)
    if func == "bulk_refresh_tokens":
        return list(REFRESH_METRICS)
    prefix = args.get("prefix", "")
    return [f"{prefix}error_rate", f"{prefix}latency_p95"]


def faults_injected(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """The fault-injecting actions of the method, with their arguments and status."""
    return [{"action": _func(e), "arguments": e["activity"]["provider"].get("arguments", {}),
             "status": e.get("status"), "start": e.get("start"), "end": e.get("end")}
            for e in journal.get("run") or [] if _func(e) in FAULT_FUNCS]


def fault_timed(metric: str) -> bool:
    """A metric timed from the scenario's fault (its recovery, its incident)."""
    return (metric == "rto_seconds" or metric.endswith(".rto_seconds")
            or metric.startswith("incident.") or metric == "mitigation.recovery_seconds")


def fault_mismatch(journal: dict[str, Any]) -> str | None:
    """Why this run's fault is not the scenario's (None: it is): the stand-in's reasons for
    the scenario's faults it cannot inject (``omnisql_fault_not_honoured``, written by the
    load control), e.g. a gray failure the fault API cannot express."""
    gaps = journal.get("omnisql_fault_not_honoured") or {}
    if not gaps:
        return None
    said = "; ".join(f"{path}: {why}" for path, why in sorted(gaps.items()))
    return (f"the stand-in cannot inject the scenario's fault ({said}): this run's recovery "
            "is from the fault the experiment injected instead, not comparable")


def judge_checks(journal: dict[str, Any], checks: Iterable[Any]) -> Judgement:
    """The scenario's checks judged on what the experiment measured, each over its own
    scope; those chaos cannot observe, or this experiment did not measure, not measured,
    and so are the fault-timed ones when the run's fault is not the scenario's
    (:func:`fault_mismatch`)."""
    checks, observed = tuple(checks), measured(journal)
    mismatch = fault_mismatch(journal)
    if mismatch is not None:
        observed = {k: v for k, v in observed.items() if not fault_timed(k.partition("@")[0])}
    judged = judge(checks, observed, "chaos", unmeasured_fails=False)
    for skipped in judged.not_measured:
        if mismatch is not None and fault_timed(skipped["metric"]) and \
                skipped["reason"].startswith("not measured by this"):
            skipped["reason"] = mismatch
    return judged


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
