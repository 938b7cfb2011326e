"""Locust's results as the simulator's window table, and staging vs simulated on one figure.

Two ways into the simulator's ``timeseries.csv`` columns (:func:`labcore.metrics.window_table`):

* a load test run with ``--results-dir`` already writes ``timeseries.csv`` from its own
  recorder: exact counts, percentiles from the simulator's 2% bins (prefer this);
* :func:`history_windows` converts Locust's ``--csv PREFIX --csv-full-history`` file
  ``PREFIX_stats_history.csv`` (e.g. from a run with another locustfile): requests and
  errors per window come from its cumulative totals, interpolated at the window
  boundaries (Locust stamps its rows to the whole second), and latency percentiles are
  Locust's: over its ~10 s rolling window, read at the window's end and rounded to two
  significant digits.

Then :func:`plot_comparison` draws any number of such tables (staging, simulated) on one
figure: P95, error rate and throughput against time, with the SLO lines::

    python -m loadtests.convert history runs/lt/locust_stats_history.csv --window 10 \\
        --out runs/lt/locust_windows.csv
    python -m loadtests.convert compare runs/lt/timeseries.csv runs/sim/timeseries.csv \\
        --label staging --label simulated --p95-slo 1.5 --error-slo 0.01 --out compare.png
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "history_windows", "load_table", "main", "plot_comparison"]

#: The window-table columns a Locust history can fill.
COLUMNS = ("time", "measured", "requests", "throughput", "error_rate",
           "latency_p50", "latency_p95", "latency_p99")


def _ms(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce") / 1000.0


def history_windows(history: pd.DataFrame, window: float, warmup: float = 0.0,
                    start: float | None = None) -> pd.DataFrame:
    """Locust's stats history (Aggregated rows) → one row per full ``window`` seconds.

    Locust writes a row about once a second from its process's start, stamped with the
    whole second it was written in, and none at its end. ``start`` is the run's time 0 as
    a Unix time (``started_at`` in a load test's ``summary.json``); without it, time 0 is
    the history's first row, which comes before the load's start by however long Locust
    took to start it (a second or more on a busy machine). Each row is placed in the
    middle of its second and the cumulative request and failure counts are interpolated
    linearly at the window boundaries, so a boundary is right to within half a second of
    traffic; a window is kept only when a row comes at or after its end.
    """
    agg = history[history["Name"] == "Aggregated"].sort_values("Timestamp", kind="stable")
    if agg.empty:
        raise ValueError("no 'Aggregated' rows: is this a Locust *_stats_history.csv?")
    stamps = agg["Timestamp"].to_numpy(dtype=float)
    t = stamps - stamps[0] if start is None else stamps + 0.5 - start
    total = agg["Total Request Count"].to_numpy(dtype=float)
    failed = agg["Total Failure Count"].to_numpy(dtype=float)
    n = max(0, math.floor(t[-1] / window + 1e-9))
    edges = np.arange(n + 1) * window
    requests = np.diff(np.interp(edges, t, total))
    errors = np.diff(np.interp(edges, t, failed))
    rows = []
    for k in range(n):
        lo, hi = edges[k], edges[k + 1]
        at_end = agg.iloc[max(0, int(np.searchsorted(t, hi + 1e-9, side="right")) - 1)]
        rows.append({
            "time": lo,
            "measured": lo >= warmup - 1e-9,
            "requests": requests[k],
            "throughput": (requests[k] - errors[k]) / window,
            "error_rate": errors[k] / requests[k] if requests[k] else math.nan,
            "latency_p50": _ms(pd.Series([at_end["50%"]])).iloc[0],
            "latency_p95": _ms(pd.Series([at_end["95%"]])).iloc[0],
            "latency_p99": _ms(pd.Series([at_end["99%"]])).iloc[0],
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def load_table(path: str | Path) -> pd.DataFrame:
    """A ``timeseries.csv`` (simulator or load test); replication 0 only."""
    table = pd.read_csv(path)
    if "replication" in table.columns:
        table = table[table["replication"] == 0]
    missing = [c for c in ("time", "latency_p95", "error_rate", "throughput") if c not in table]
    if missing:
        raise ValueError(f"{path}: not a window table (missing {', '.join(missing)})")
    return table


def plot_comparison(
    tables: Mapping[str, pd.DataFrame],
    path: str | Path,
    p95_slo: float | None = None,
    error_slo: float | None = None,
    title: str = "load test vs simulation",
) -> None:
    """P95, error rate and throughput of each table against time, on one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, err, thr) = plt.subplots(3, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    for label, table in tables.items():
        window = float(np.diff(table["time"]).min()) if len(table) > 1 else 0.0
        x = table["time"] + window / 2
        lat.plot(x, table["latency_p95"], marker=".", label=f"{label} P95")
        err.plot(x, table["error_rate"].fillna(0.0), marker=".", label=label)
        thr.plot(x, table["throughput"], marker=".", label=label)
    if p95_slo is not None:
        lat.axhline(p95_slo, color="crimson", lw=1, label="P95 SLO")
    if error_slo is not None:
        err.axhline(error_slo, color="crimson", lw=1, label="error SLO")
    lat.set_yscale("log")
    lat.set_ylabel("P95 latency (s)")
    err.set_ylabel("error rate")
    thr.set_ylabel("successful req/s")
    thr.set_xlabel("time since start (s)")
    for ax in (lat, err, thr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    hist = sub.add_parser("history", help="Locust *_stats_history.csv → window table CSV")
    hist.add_argument("history")
    hist.add_argument("--window", type=float, default=10.0, help="seconds (default 10)")
    hist.add_argument("--warmup", type=float, default=0.0, help="seconds not measured")
    hist.add_argument("--start", type=float,
                      help="the run's time 0 as a Unix time (summary.json's started_at); "
                           "default: the history's first row")
    hist.add_argument("--out", required=True)
    cmp_ = sub.add_parser("compare", help="window tables → one PNG")
    cmp_.add_argument("tables", nargs="+")
    cmp_.add_argument("--label", action="append", default=[])
    cmp_.add_argument("--p95-slo", type=float)
    cmp_.add_argument("--error-slo", type=float)
    cmp_.add_argument("--title", default="load test vs simulation")
    cmp_.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "history":
            table = history_windows(pd.read_csv(args.history), args.window, args.warmup,
                                    args.start)
            table.to_csv(args.out, index=False)
            return 0
        labels = args.label or [Path(t).parent.name or t for t in args.tables]
        if len(labels) != len(args.tables):
            parser.error("give one --label per table (or none)")
        tables = {label: load_table(t) for label, t in zip(labels, args.tables)}
        plot_comparison(tables, args.out, args.p95_slo, args.error_slo, args.title)
        return 0
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
