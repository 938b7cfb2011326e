"""``python -m sim conform --runner locust`` end to end against a real stand-in (issue 18):
a 20-second baseline at the standin profile, 3 simulated replications."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Standin, child_env

from labcore.checks import scoped_metrics
from labcore.facts import load_facts
from labcore.scenario_file import read_scenario

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(400)]
SHORT = ["run.duration=20s", "run.warmup=5s", "run.window=5s"]


def test_conform_runs_locust_and_compares_check_by_check(standin: Standin,
                                                         tmp_path: Path) -> None:
    scenario = REPO / "scenarios" / "baseline.yaml"
    sets = [arg for item in SHORT for arg in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "conform", str(scenario), "--runner", "locust",
         "--dir", str(standin.root), "-R", "3", *sets, "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=360, cwd=REPO, env=child_env())
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads((tmp_path / "conformance.json").read_text())
    assert report["agree"] == (proc.returncode == 0)
    entry = report["scenarios"][0]
    assert entry["runner_exit"] in (0, 1) and entry["note"] is None
    rows = {row["metric"]: row for row in entry["checks"]}
    assert rows["engine.utilization"]["agree"] is None  # locust cannot observe a tier
    # the measured values are labcore's metrics of the windows Locust wrote, and the
    # measured verdicts are the ones Locust's own gate reached
    results = tmp_path / "baseline" / "locust"
    source = read_scenario(scenario, "standin", SHORT)
    facts = load_facts(results / "facts.npz", source.scenario)
    metrics = scoped_metrics(facts, source.scenario.checks)
    gate = {c["metric"]: c["passed"] for c in
            json.loads((results / "summary.json").read_text())["checks"]}
    for metric in ("latency_p95", "error_rate"):
        row = rows[metric]
        assert row["measured"]["value"] == pytest.approx(metrics[metric])
        assert row["measured"]["passed"] == gate[metric]
        assert row["agree"] == (row["measured"]["passed"] == row["predicted"]["passed"])
        assert row["predicted"]["replications"] == 3
    assert (tmp_path / "baseline" / "overlay.png").stat().st_size > 10_000
    assert (tmp_path / "baseline" / "sim" / "summary.json").exists()
