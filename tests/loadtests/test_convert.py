"""Locust's stats history → window table, and the comparison figure; the public names."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import pytest

from loadtests.convert import history_windows, load_table, main, plot_comparison


def _history() -> pd.DataFrame:
    """Cumulative totals as Locust writes them, one Aggregated row a second, plus noise rows."""
    rows = []
    for s in range(21):
        rows.append({"Timestamp": 1_000 + s, "Name": "Aggregated", "Total Request Count": 20 * s,
                     "Total Failure Count": s // 5, "50%": 30, "95%": 1500 if s >= 10 else 120,
                     "99%": "N/A" if s == 0 else 2000})
        rows.append({"Timestamp": 1_000 + s, "Name": "crm.accounts [hot]",
                     "Total Request Count": 5 * s, "Total Failure Count": 0, "50%": 1,
                     "95%": 1, "99%": 1})
    return pd.DataFrame(rows)


def test_history_becomes_windows_with_exact_counts() -> None:
    table = history_windows(_history(), window=5.0, warmup=5.0)
    assert table["time"].tolist() == [0.0, 5.0, 10.0, 15.0]
    assert table["measured"].tolist() == [False, True, True, True]
    assert table["requests"].tolist() == [100, 100, 100, 100]
    assert table["error_rate"].tolist() == [0.01, 0.01, 0.01, 0.01]
    assert table["throughput"].tolist() == [19.8] * 4
    assert table["latency_p95"].tolist() == [0.12, 1.5, 1.5, 1.5]  # read at the window's end
    with pytest.raises(ValueError, match="Aggregated"):
        history_windows(_history()[lambda d: d["Name"] != "Aggregated"], 5.0)


def _late_history(rate: list[float], start: float,
                  first_row: float) -> tuple[pd.DataFrame, list[float]]:
    """A history as Locust writes it for a load that starts at ``start`` (Unix time) and
    sends ``rate[s]`` requests a second in its second s, evenly spaced: rows every 1.0003 s
    from ``first_row``, stamped to the whole second, cumulative counts as of the row; the
    process ends 0.6 s into the load's last second. Also the exact count per second."""
    sends = [start + s + (i + 0.5) / r for s, r in enumerate(rate) for i in range(int(r))]
    end = start + len(rate) - 0.4
    rows, when = [], first_row
    while when < end:
        sent = sum(1 for x in sends if x <= when)
        rows.append({"Timestamp": int(when), "Name": "Aggregated", "Total Request Count": sent,
                     "Total Failure Count": sent // 10, "50%": 30, "95%": 90, "99%": 120})
        when += 1.0003
    return pd.DataFrame(rows), [float(int(r)) for r in rate]


def test_history_windows_start_at_the_runs_start_not_at_locusts(tmp_path: Path) -> None:
    """Locust's history starts with its process, 1.8 s before this load: given the run's
    start (summary.json's started_at), every window's count is within half a second of
    traffic of the exact one; from the first row instead, each window reads the traffic
    1.8 s earlier. A window that the history does not reach past is left out."""
    rate = [20.0] * 5 + [60.0] * 5 + [20.0] * 10  # a surge in the second window
    start = 5_000.35
    history, per_second = _late_history(rate, start, first_row=start - 1.8)
    exact = [sum(per_second[k:k + 5]) for k in range(0, 20, 5)]
    table = history_windows(history, window=5.0, warmup=5.0, start=start)
    # the last row is written 19.2 s into the run, stamped 5,019 and so placed at 19.15 s:
    # the window [15, 20) is left out
    assert table["time"].tolist() == [0.0, 5.0, 10.0]
    assert table["measured"].tolist() == [False, True, True]
    assert all(abs(a - b) <= 0.5 * 60 for a, b in zip(table["requests"], exact)), (
        table["requests"].tolist(), exact)
    assert abs(table["requests"].iloc[0] - exact[0]) <= 0.5 * 20  # no surge at its ends
    naive = history_windows(history, window=5.0, warmup=5.0)
    assert naive["requests"].iloc[1] < exact[1] - 1.3 * 40, (naive["requests"].tolist(), exact)
    # the CLI's ``history --start`` gives the same windows
    path, out = tmp_path / "h.csv", tmp_path / "w.csv"
    history.to_csv(path, index=False)
    assert main(["history", str(path), "--window", "5", "--warmup", "5",
                 "--start", repr(start), "--out", str(out)]) == 0
    assert load_table(out)["requests"].tolist() == table["requests"].tolist()


def test_compare_cli_draws_one_figure(tmp_path: Path) -> None:
    history = tmp_path / "h.csv"
    _history().to_csv(history, index=False)
    windows = tmp_path / "w.csv"
    assert main(["history", str(history), "--window", "5", "--out", str(windows)]) == 0
    assert list(load_table(windows)["time"]) == [0.0, 5.0, 10.0, 15.0]
    out = tmp_path / "cmp.png"
    assert main(["compare", str(windows), str(windows), "--label", "a", "--label", "b",
                 "--p95-slo", "1.5", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    with pytest.raises(SystemExit):  # two labels for one table
        main(["compare", str(windows), "--label", "a", "--label", "b", "--out", str(out)])
    assert main(["compare", str(history), "--out", str(out)]) == 2  # not a window table
    plot_comparison({"only": load_table(windows)}, tmp_path / "one.png")


@pytest.mark.parametrize("name", ["targets", "shapes", "queries", "recorder", "gates", "faults",
                                  "session", "convert"])
def test_public_names_exist(name: str) -> None:
    module = importlib.import_module(f"loadtests.{name}")
    assert module.__all__ and all(hasattr(module, n) for n in module.__all__)
