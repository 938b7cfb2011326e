"""A failed run says why (issue 13, item 3): the windows, the tier, the outcome, the fault."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from sim_helpers import SCENARIOS, textbook

from sim.cli import main


def test_a_failing_run_prints_why_naming_tier_outcome_and_fault(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", str(SCENARIOS / "retry_storm.yaml"), "--profile", "standin",
                 "--no-plots", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    why = json.loads((out / "summary.json").read_text())["why"]
    assert why["first_saturated"]["tier"] == "connector"  # the provider behind it slowed
    assert [a["detail"] for a in why["active"]] == ["provider:crm latency x3"]
    # Every number of the why can be read again from timeseries.csv (replication 0).
    df = pd.read_csv(out / "timeseries.csv")
    df = df[df["replication"] == 0]
    breach = df[(df["time"] >= why["breach"]["from"]) & (df["time"] < why["breach"]["to"])]
    assert len(breach) == why["breach"]["windows"] and not breach["meets_slo"].any()
    causes = breach[[c for c in df.columns if c.startswith("errors.")]].sum()
    assert why["dominant_outcome"]["outcome"] == causes.idxmax().removeprefix("errors.")
    assert why["dominant_outcome"]["failed"] == causes.sum()
    worst = why["worst_windows"][0]
    assert worst["error_rate"] == breach["error_rate"].max()
    assert "why: the SLO was missed from 2m" in printed
    assert "rose first: connector" in printed
    assert f"dominant error: {why['dominant_outcome']['outcome']}" in printed
    assert "fault active: provider:crm latency x3 (2m to 4m)" in printed


def test_a_passing_run_prints_no_why_unless_asked(tmp_path, capsys):
    data = textbook(run={"duration": "20m", "warmup": "2m", "window": "1m"})
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["run", str(path), "--no-plots", "--out", str(tmp_path / "a")]) == 0
    assert "why:" not in capsys.readouterr().out
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["why"] is None
    assert main(["run", str(path), "--no-plots", "--why", "--out", str(tmp_path / "b")]) == 0
    assert "why: every measured window met the SLO" in capsys.readouterr().out
