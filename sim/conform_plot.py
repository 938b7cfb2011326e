"""The overlay of ``python -m sim conform``: per check, the simulated replications' band
(2.5-97.5% of single runs, window by window) beside the measured window series.

A check whose metric is a window series (``latency_p95``, ``error_rate``, a tenant's error
rate) is drawn on that series; a recovery check on the P95 series with the predicted RTO
interval shaded after the fault and the measured recovery marked; any other check on the
series its metric is computed from (latency or errors), its threshold drawn where it is
on that scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from labcore.facts import WindowFacts
from labcore.metrics import window_table

from .conform import CheckComparison

__all__ = ["plot_overlay", "series_of"]


def series_of(metric: str, columns: Sequence[str]) -> str:
    """The window column a check's metric is drawn on."""
    if metric in columns:
        return metric
    if metric.endswith("error_rate") or metric.startswith(("errors.", "failed")):
        return "error_rate"
    return "latency_p95"


def _band(results: Sequence[WindowFacts], column: str) -> tuple[Any, Any, Any]:
    tables = [window_table(r, i) for i, r in enumerate(results)]
    values = np.vstack([t[column].to_numpy(dtype=float) for t in tables])
    with np.errstate(all="ignore"):
        low = np.nanpercentile(values, 2.5, axis=0)
        high = np.nanpercentile(values, 97.5, axis=0)
    return tables[0]["time"].to_numpy() / 60.0, low, high


def _panel(ax: Any, row: CheckComparison, results: Sequence[WindowFacts],
           measured: Any) -> None:
    column = series_of(row.metric, list(window_table(results[0]).columns))
    minutes, low, high = _band(results, column)
    ax.fill_between(minutes, low, high, color="tab:blue", alpha=0.25, step="post",
                    label=f"simulated 95% of single runs (n={len(results)})")
    if column in measured.columns:  # a runner does not see tier utilisation, for one
        ax.step(measured["time"] / 60.0, measured[column], where="post", color="black",
                label="measured")
    warmup = results[0].scenario.run.warmup
    if warmup > 0:
        ax.axvspan(0, warmup / 60.0, color="gray", alpha=0.1, label="warm-up")
    if column == row.metric:
        ax.axhline(row.threshold, color="crimson", lw=1, label=f"check {row.op} {row.threshold:g}")
    if row.metric.endswith("rto_seconds"):
        _recovery(ax, row, results[0])
    ax.set_ylabel(column)
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

    measured = window_table(facts)
    fig, axes = plt.subplots(max(1, len(rows)), 1, figsize=(10, 2.8 * max(1, len(rows))),
                             sharex=True, constrained_layout=True, squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        _panel(ax, row, results, measured)
    axes[-1, 0].set_xlabel("time (min)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
