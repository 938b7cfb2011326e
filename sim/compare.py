"""``python -m sim compare RUN_A RUN_B``: two run folders side by side.

For each headline metric and every metric a check of either run names: A's and B's mean
with their 95% CI (from ``summary.json``), the difference B − A, and whether it is
significant. The test is **Welch's t test** on the replications' values
(``replications.csv``, written by ``python -m sim run``), two-sided, at 5%: it does not
assume equal variances, and replications are independent runs. With fewer than two
replications on either side no test is possible and the row says so; a metric that is
constant and equal in both runs is "no difference". The comparison is written to
``compare.json`` and an overlay of both runs over time (replication 0: P95 latency and
error rate) to ``compare.png``, in ``--out`` (default ``runs/compare-<A>-vs-<B>``).

Comparing two runs of the same scenario with different seeds tests the simulator's noise;
comparing two variants (e.g. ``--set topology.engine.workers_per_zone=24``) tests the
change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from labcore.scenario_file import ScenarioError

from .humanize import human, human_interval, make_console
from .report import json_safe

__all__ = ["ALPHA", "HEADLINE", "compare_runs", "compare_table", "load_run", "plot_compare"]

ALPHA = 0.05
HEADLINE = ("latency_p50", "latency_p95", "latency_p99", "error_rate", "availability",
            "throughput", "retry_amplification", "slo_window_compliance", "rto_seconds",
            "rpo_seconds")


def load_run(folder: Path) -> dict[str, Any]:
    """A run folder's summary, replications and time series; exit 2 if it is not one."""
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise ScenarioError(str(folder), "not a run folder (no summary.json); give two "
                            "folders written by python -m sim run")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(str(summary_path), f"cannot read: {exc}") from None
    reps = folder / "replications.csv"
    series = folder / "timeseries.csv"
    return {"folder": folder, "summary": summary,
            "replications": pd.read_csv(reps) if reps.is_file() else None,
            "timeseries": pd.read_csv(series) if series.is_file() else None}


def _keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    checked = [c["metric"] if c["over"] == "run" else f"{c['metric']}@{c['over']}"
               for run in (a, b) for c in run["summary"]["checks"]]
    both = set(a["summary"]["metrics"]) & set(b["summary"]["metrics"])
    return [k for k in dict.fromkeys([*HEADLINE, *checked]) if k in both]


def _welch(a: pd.DataFrame | None, b: pd.DataFrame | None, key: str) -> dict[str, Any]:
    if a is None or b is None or key not in a or key not in b:
        return {"p": None, "test": "none: replications.csv missing"}
    x, y = a[key].dropna().to_numpy(float), b[key].dropna().to_numpy(float)
    if len(x) < 2 or len(y) < 2:
        return {"p": None, "test": "none: fewer than 2 replications"}
    if x.std() == 0 and y.std() == 0:
        return {"p": 1.0 if x[0] == y[0] else 0.0, "test": "constant values"}
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly constant values: scipy warns, the p stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(x, y, equal_var=False).pvalue)
    return {"p": p, "test": "Welch t"}


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The comparison of two loaded runs (see the module docstring)."""
    rows = []
    for key in _keys(a, b):
        ea, eb = a["summary"]["metrics"][key], b["summary"]["metrics"][key]
        diff = (None if ea["mean"] is None or eb["mean"] is None else eb["mean"] - ea["mean"])
        test = _welch(a["replications"], b["replications"], key)
        rows.append({"metric": key, "a": ea, "b": eb, "difference": diff, **test,
                     "significant": test["p"] is not None and test["p"] < ALPHA})
    return {"a": str(a["folder"]), "b": str(b["folder"]), "alpha": ALPHA,
            "a_passed": a["summary"]["passed"], "b_passed": b["summary"]["passed"],
            "rows": rows}


def _with_ci(est: dict[str, Any], metric: str) -> str:
    if est["mean"] is None:
        return "—"
    if est.get("ci_low") is None:
        return human(est["mean"], metric)
    return f"{human(est['mean'], metric)} [{human_interval(est['ci_low'], est['ci_high'], metric)}]"


def compare_table(result: dict[str, Any], name_a: str, name_b: str) -> Any:
    """A rich table of the comparison, 80 columns wide at most."""
    from rich.table import Table

    table = Table(title=f"A = {name_a}, B = {name_b}; Welch t on replications, "
                        f"significant if p < {ALPHA:g}", expand=True)
    ratios = {"metric": 3, "A (95% CI)": 4, "B (95% CI)": 4, "B − A": 2, "p": 2}
    for column, ratio in ratios.items():
        table.add_column(column, overflow="fold", ratio=ratio, min_width=5,
                         justify="left" if column == "metric" else "right")
    for row in result["rows"]:
        metric = row["metric"].split("@")[0]
        diff = row["difference"]
        shown = "—" if diff is None else ("+" if diff > 0 else "") + human(diff, metric)
        p = "n/a" if row["p"] is None else f"{row['p']:.3f}"
        mark = "[bold]*[/bold]" if row["significant"] else ""
        table.add_row(row["metric"], _with_ci(row["a"], metric), _with_ci(row["b"], metric),
                      shown + mark, p)
    table.caption = "* significant difference"
    return table


def plot_compare(a: dict[str, Any], b: dict[str, Any], path: Path) -> bool:
    """P95 latency and error rate of both runs over time (replication 0); False if no data."""
    if a["timeseries"] is None or b["timeseries"] is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, err) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, constrained_layout=True)
    for run, label, style in ((a, "A", "-"), (b, "B", "--")):
        df = run["timeseries"]
        df = df[df["replication"] == 0]
        minutes = df["time"] / 60.0
        name = f"{label}: {run['summary']['scenario']} ({Path(run['folder']).name})"
        lat.plot(minutes, df["latency_p95"], style, label=name)
        err.plot(minutes, 100.0 * df["error_rate"].fillna(0.0), style, label=name)
    lat.set_yscale("log")
    lat.set_ylabel("P95 latency of successes (s)")
    err.set_ylabel("error rate (%)")
    err.set_xlabel("simulated time (min)")
    for ax in (lat, err):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run_compare(run_a: Path, run_b: Path, out: Path | None, console: Any) -> int:
    """``python -m sim compare``: print the table, write compare.json and compare.png."""

    from .limits import check_out_folder

    a, b = load_run(run_a), load_run(run_b)
    out = out or Path("runs") / f"compare-{run_a.name}-vs-{run_b.name}"
    check_out_folder(out)
    result = compare_runs(a, b)
    (out / "compare.json").write_text(json.dumps(json_safe(result), indent=2, sort_keys=True)
                                      + "\n")
    plotted = plot_compare(a, b, out / "compare.png")
    make_console().print(compare_table(result, run_a.name, run_b.name))
    console.print(f"written: {out / 'compare.json'}"
                  f"{' and ' + str(out / 'compare.png') if plotted else ''}", highlight=False)
    return 0
