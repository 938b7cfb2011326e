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
