"""The overlay of ``python -m sim conform``: per check, the simulated replications' band
(2.5-97.5% of single runs, window by window) beside the measured window series.

A check is drawn on the window series its metric is computed from, over the check's
tenants (``tenant.X.*``: X's requests; ``tenants_except.X.*``: everyone else's): a
latency percentile, the error rate (error counts, availability), or a window column
(tier utilisation); its threshold drawn where it is on that scale. A recovery check is
drawn on the P95 series with the predicted RTO interval shaded after the fault and the
measured recovery marked.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from labcore.facts import WindowFacts
from labcore.metrics import percentile, window_table
from labcore.window_hist import WindowHist

from .conform import CheckComparison

__all__ = ["plot_overlay", "series_of", "window_series"]


def series_of(metric: str) -> tuple[str, str]:
    """The window series a check's metric is drawn on: (which, tenant scope), where
    which is ``latency_pNN`` or ``error_rate`` (or a window column such as a tier's
    utilisation) and the scope ``""`` (all tenants), ``tenant.X`` or ``tenants_except.X``."""
    scope = ""
    for prefix in ("tenant.", "tenants_except."):
        if metric.startswith(prefix):
            name, _, metric = metric[len(prefix):].partition(".")
            scope = prefix + name
    if metric.startswith(("latency_p", "incident.latency_p")):
        return metric.removeprefix("incident."), scope
    if metric.endswith(".utilization"):
        return metric, scope
    if metric.endswith(("error_rate", "availability")) or metric.startswith(("errors.", "failed")):
        return "error_rate", scope
    return "latency_p95", scope


def window_series(facts: WindowFacts, which: str, scope: str) -> np.ndarray:
    """Per window: ``which`` over the tenants of ``scope`` (NaN where there is none)."""
    a = facts.arrays
    if which not in ("error_rate",) and not which.startswith("latency_p"):
        table = window_table(facts)
        return table[which].to_numpy(dtype=float) if which in table else np.full(len(table), np.nan)
    tenants = list(facts.tenants)
    kind, _, name = scope.partition(".")
    keep = [i for i, t in enumerate(tenants)
            if not scope or (kind == "tenant") == (t == name)]
    if which == "error_rate":
        outcomes = a["outcomes"][:, keep, :].sum(axis=1)
        total = outcomes.sum(axis=1).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(total > 0, 1.0 - outcomes[:, 0] / total, np.nan))
    q = float(which.removeprefix("latency_p")) / 100.0
    hist = WindowHist.of(a["hist"])
    sums = hist.window_sums(np.arange(hist.n_windows), np.array(keep, dtype=np.int64))
    return np.array([percentile(h, q) for h in sums])


def _band(results: Sequence[WindowFacts], which: str, scope: str) -> tuple[Any, Any, Any]:
    values = np.vstack([window_series(r, which, scope) for r in results])
    # A window no replication saw traffic in (a lost region's) has no band: NaN, silently
    # (numpy warns "All-NaN slice" through the warnings module, not errstate).
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanpercentile(values, 2.5, axis=0)
        high = np.nanpercentile(values, 97.5, axis=0)
    return results[0].arrays["start"] / 60.0, low, high


def _panel(ax: Any, row: CheckComparison, results: Sequence[WindowFacts],
           facts: WindowFacts) -> None:
    which, scope = series_of(row.metric)
    minutes, low, high = _band(results, which, scope)
    ax.fill_between(minutes, low, high, color="tab:blue", alpha=0.25, step="post",
                    label=f"simulated 95% of single runs (n={len(results)})")
    measured = window_series(facts, which, scope)
    if not np.isnan(measured).all():  # a runner does not see tier utilisation, for one
        ax.step(facts.arrays["start"] / 60.0, measured, where="post", color="black",
                label="measured")
    warmup = results[0].scenario.run.warmup
    if warmup > 0:
        ax.axvspan(0, warmup / 60.0, color="gray", alpha=0.1, label="warm-up")
    if row.metric.endswith(which):
        ax.axhline(row.threshold, color="crimson", lw=1, label=f"check {row.op} {row.threshold:g}")
    if row.metric.endswith("rto_seconds"):
        _recovery(ax, row, results[0])
    ax.set_ylabel(f"{which} ({scope.replace('_', ' ') or 'all tenants'})", fontsize=8)
    ax.set_title(f"{row.name}: predicted {'pass' if row.predicted.passed else 'FAIL'}, "
                 f"measured {_word(row.measured.passed)}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)


def _recovery(ax: Any, row: CheckComparison, result: WindowFacts) -> None:
    """The predicted RTO interval after the first fault, and the measured recovery."""
    if not result.marks:
        return
    start = min(m.start for m in result.marks)
    pred = row.predicted
    if pred.low is not None:
        end = pred.high if pred.high is not None else result.scenario.run.duration - start
        ax.axvspan((start + pred.low) / 60.0, (start + end) / 60.0, color="green", alpha=0.12,
                   label="predicted recovery (95% of runs)")
    if row.measured.value is not None:
        ax.axvline((start + row.measured.value) / 60.0, color="green", ls="--",
                   label="measured recovery")
    ax.axvline(start / 60.0, color="purple", lw=1, label="fault")


def _word(passed: bool | None) -> str:
    return "not measured" if passed is None else ("pass" if passed else "FAIL")


def plot_overlay(rows: Sequence[CheckComparison], results: Sequence[WindowFacts],
                 facts: WindowFacts, path: Path) -> None:
    """One panel per check; written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(max(1, len(rows)), 1, figsize=(10, 2.8 * max(1, len(rows))),
                             sharex=True, constrained_layout=True, squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        _panel(ax, row, results, facts)
    axes[-1, 0].set_xlabel("time (min)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
