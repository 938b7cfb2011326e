"""The lab's summary of a run: verdict, hypotheses, faults, RTO/RPO vs target vs simulator.

Built only from the journal's fields named here and the scenario (never from the
experiment's ``secrets`` or any request header), so it cannot leak a credential.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labcore.registry import metric_key

from .verdict import faults_injected, judge_checks, probe_measured, verdict

__all__ = ["MIN_REPLICATIONS", "build_summary", "predict", "render", "writes_lost"]

PREDICTED = ("rto_seconds", "rpo_seconds", "error_rate", "latency_p95")
#: The fewest replications a prediction shown beside a run uses (its spread needs them).
MIN_REPLICATIONS = 10


def _spread(values: list[float | None]) -> dict[str, float | None]:
    """The 2.5-97.5% range of single replications (None if any has no value: a run that
    did not recover), and how many had no value."""
    clean = [float(v) for v in values if v is not None and not math.isnan(v)]
    missing = len(values) - len(clean)
    if missing or not clean:
        return {"p2_5": None, "p97_5": None, "missing": float(missing)}
    low, high = np.percentile(np.asarray(clean), [2.5, 97.5])
    return {"p2_5": float(low), "p97_5": float(high), "missing": 0.0}


def predict(scenario: Any, replications: int = MIN_REPLICATIONS,
            ) -> dict[str, dict[str, float | None]]:
    """The simulator's prediction of the scenario's check metrics (keyed ``metric`` or
    ``metric@over`` like ``sim.evaluate_checks``) and a few headline metrics, over at least
    :data:`MIN_REPLICATIONS` replications: the mean with its 95% CI, and the spread of
    single runs (``p2_5``..``p97_5``: where one run, such as this experiment, may land)."""
    from labcore.metrics import aggregate, compute_metrics
    from sim import run_replications

    runs = run_replications(scenario, replications=max(MIN_REPLICATIONS, int(replications)))
    out: dict[str, dict[str, float | None]] = {}
    for scope in {"run"} | {c.over for c in scenario.checks}:
        per_run = [compute_metrics(r, scope) for r in runs]  # type: ignore[arg-type]
        estimates = aggregate(per_run)
        wanted = {c.metric for c in scenario.checks if c.over == scope}
        wanted |= set(PREDICTED) if scope == "run" else set()
        for metric in wanted & set(estimates):
            spread = _spread([r[metric] for r in per_run])
            out[metric_key(metric, scope)] = {**estimates[metric].as_dict(), **spread,
                                              "n": float(len(runs))}
    return out


def _hypothesis(journal: dict[str, Any], when: str) -> dict[str, Any] | None:
    state = (journal.get("steady_states") or {}).get(when)
    if state is None:
        return None
    return {"met": bool(state.get("steady_state_met")),
            "probes": [{"name": p["activity"]["name"], "status": p.get("status"),
                        "tolerance_met": p.get("tolerance_met")}
                       for p in state.get("probes") or []]}


def writes_lost(journal: dict[str, Any]) -> dict[str, Any] | None:
    """The RPO check of the method (`acknowledged_writes_lost`): the replica's lag at the
    loss (the RPO) and how many acknowledged metadata writes the failover lost beside it."""
    for entry in journal.get("run") or []:
        provider = (entry.get("activity") or {}).get("provider") or {}
        if provider.get("func") != "acknowledged_writes_lost":
            continue
        out = entry.get("output")
        keys = ("lost", "last_acknowledged", "max_visible", "rpo_seconds",
                "lag_at_loss_seconds", "snapshot_restored")
        if entry.get("status") == "succeeded" and isinstance(out, dict):
            return {"measured": True, **{k: out.get(k) for k in keys}}
        return {"measured": False, **dict.fromkeys(keys)}
    return None


def _lost_text(lost: dict[str, Any]) -> str:
    if not lost.get("measured", lost["lost"] is not None):
        return "acknowledged writes lost: not measured (the check failed)"
    lag, snapshot = lost.get("lag_at_loss_seconds"), lost.get("snapshot_restored")
    lag_text = ("replica lag at the loss: not read" if lag is None
                else f"replica lag at the loss: {lag * 1000:.1f} ms")
    if snapshot:  # failover.metadata.mode: snapshot (sandbox.admin.snapshots)
        lag_text = (f"restored the snapshot started {snapshot['rpo_seconds']:.1f} s before "
                    "the loss")
    if lost["lost"] is None:
        return f"{lag_text}; acknowledged writes lost: no writer ran"
    return (f"{lag_text}; acknowledged writes lost: {lost['lost']} (last acknowledged "
            f"{lost['last_acknowledged']}, max visible after failover {lost['max_visible']})")


def build_summary(journal: dict[str, Any], scenario_file: Any,
                  prediction: dict[str, dict[str, float | None]] | None,
                  prometheus: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``prometheus``: :func:`chaosomnisql.readings.prometheus_readings` of the journal
    (None: the target has no Prometheus), shown beside each check it read."""
    checks = scenario_file.scenario.checks
    judged = judge_checks(journal, checks)
    stats = probe_measured(journal)  # the stand-in's own stats, shown beside
    results = {(r.name, r.metric, r.over): r for r in judged.results}
    skipped = {(s["name"], s["metric"], s["over"]): s["reason"] for s in judged.not_measured}
    targets = []
    for c in checks:  # each check over its own scope, here and in the simulator
        result = results.get((c.label, c.metric, c.over))
        targets.append({
            "check": c.label, "metric": c.metric, "op": c.op, "target": c.value,
            "over": c.over, "key": metric_key(c.metric, c.over),
            "measured": result.observed if result else None, "is_measured": result is not None,
            "passed": result.passed if result else None,
            "not_measured": skipped.get((c.label, c.metric, c.over)),
            "simulator": (prediction or {}).get(metric_key(c.metric, c.over)),
            "stats": stats.get(metric_key(c.metric, c.over)),
            "prometheus": (prometheus or {}).get(metric_key(c.metric, c.over))})
    reasons = verdict(journal, checks)
    return {
        "experiment": journal.get("experiment", {}).get("title"),
        "scenario": str(scenario_file.path), "profile": scenario_file.profile,
        "status": journal.get("status"), "passed": not reasons, "reasons": reasons,
        "hypothesis_before": _hypothesis(journal, "before"),
        "hypothesis_after": _hypothesis(journal, "after"),
        "faults_injected": faults_injected(journal),
        "rollbacks": [{"name": r["activity"]["name"], "status": r.get("status")}
                      for r in journal.get("rollbacks") or []],
        "targets": targets, "simulator": prediction, "load": journal.get("omnisql_load"),
        "writes_lost": writes_lost(journal), "windows": _windows(journal),
    }


def _windows(journal: dict[str, Any]) -> dict[str, Any] | None:
    """How the run's window facts were cut (window, warm-up, sustain, count, marks) and
    where ``facts.npz`` went; the headline metrics they give."""
    windows = journal.get("omnisql_windows")
    if not windows:
        return None
    return {k: windows.get(k) for k in ("window", "warmup", "sustain", "windows", "elapsed",
                                         "marks", "facts", "measured")}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _hyp(h: dict[str, Any] | None) -> str:
    if h is None:
        return "not run"
    return ("met" if h["met"] else "NOT met") + "".join(
        f"\n      {p['name']}: {p['status']}, "
        f"tolerance {'met' if p['tolerance_met'] else 'NOT met'}"
        for p in h["probes"])


def _stats_text(target: dict[str, Any]) -> str:
    """The stand-in's stats as a probe read them (shown beside; the windows are judged)."""
    if "stats" not in target or target["stats"] is None:
        return ""
    return f" | stand-in stats {_fmt(target['stats'])}"


def _sim_text(sim: dict[str, Any]) -> str:
    """Mean, the spread of single runs (where this one run may land) and the mean's CI."""
    text = f"{_fmt(sim.get('mean'))}"
    if sim.get("n"):
        missing = int(sim.get("missing") or 0)
        spread = (f"{_fmt(sim.get('p2_5'))}..{_fmt(sim.get('p97_5'))}" if not missing
                  else f"{missing} of {int(sim['n'])} runs have none")
        text += f" (single runs 2.5-97.5%: {spread}, n={int(sim['n'])};"
    else:
        text += " ("
    return text + f" 95% CI of the mean {_fmt(sim.get('ci_low'))}..{_fmt(sim.get('ci_high'))})"


def _prom_text(reading: dict[str, Any] | None) -> str:
    """Prometheus's reading beside /v1/stats', over the same seconds (empty: none taken)."""
    if reading is None:
        return ""
    if reading["query"] is None:
        return " (stats) | prometheus n/a (no per-tenant latency histogram)"
    return f" (stats) | prometheus {_fmt(reading['value'])} (same {reading['window_seconds']} s)"


def render(summary: dict[str, Any]) -> str:
    """The summary as the text printed at the end of a run."""
    verdict = "PASS" if summary["passed"] else "FAIL"
    lines = [f"== OmniSQL chaos summary: {summary['experiment']}",
             f"   scenario {summary['scenario']} (profile {summary['profile']})",
             f"   verdict: {verdict} (journal status {summary['status']})"]
    lines += [f"     - {r}" for r in summary["reasons"]]
    lines.append(f"   hypothesis before: {_hyp(summary['hypothesis_before'])}")
    lines.append(f"   hypothesis after:  {_hyp(summary['hypothesis_after'])}")
    lines.append("   faults injected:" + ("" if summary["faults_injected"] else " none"))
    lines += [f"     - {f['action']} {f['arguments']}: {f['status']}"
              for f in summary["faults_injected"]]
    lines.append("   rollbacks: " + (", ".join(f"{r['name']} {r['status']}"
                                               for r in summary["rollbacks"]) or "none"))
    lines.append("   scenario checks, each over its own scope "
                 "(measured here | simulator at this profile, same scope):")
    lost = summary.get("writes_lost")
    for t in summary["targets"]:
        sim = t["simulator"] or {}
        here = _fmt(t["measured"]) if t["is_measured"] else f"not measured ({t['not_measured']})"
        lines.append(f"     {t['metric']} over {t['over']} {t['op']} {t['target']:g}: {here}"
                     f"{_stats_text(t)}{_prom_text(t.get('prometheus'))}  | simulator "
                     f"{_sim_text(sim)}")
        if lost is not None and t["metric"] == "rpo_seconds":
            lines.append(f"       {_lost_text(lost)}")  # the RPO in writes, beside it
            lost = None
    if lost is not None:  # no RPO check in the scenario: still say what was lost
        lines.append(f"   {_lost_text(lost)}")
    if summary.get("load"):
        lines.append(f"   background load: {summary['load']}")
    windows = summary.get("windows")
    if windows:
        lines.append(f"   measured on the load's client windows ({windows['window']:g} s, "
                     f"warm-up {windows['warmup']:g} s, sustain {windows['sustain']:g} s, "
                     f"{windows.get('windows') or 0} windows); facts: {windows['facts']}")
    return "\n".join(lines)
