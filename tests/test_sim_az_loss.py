"""The shipped scenarios' verdicts through the CLI: the contract users rely on."""

import json
import subprocess
import sys

import pytest
from sim_helpers import ROOT, SCENARIOS


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(SCENARIOS / f"{name}.yaml"),
                           "--out", str(out), *extra], cwd=ROOT, capture_output=True, text=True)
    summary = json.loads((out / "summary.json").read_text()) if proc.returncode < 2 else None
    return proc, summary, out


def test_baseline_passes(tmp_path):
    proc, summary, out = _run(tmp_path, "baseline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["passed"] and summary["metrics"]["error_rate"]["mean"] < 0.01
    for name in ("summary.json", "timeseries.csv", "overview.png", "scenario.yaml"):
        assert (out / name).stat().st_size > 0


def test_az_loss_recovers_within_rto(tmp_path):
    proc, summary, _ = _run(tmp_path, "az_loss", "--no-plots")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rto = summary["metrics"]["rto_seconds"]["mean"]
    assert rto is not None and 0 <= rto < 900
    assert summary["metrics"]["rpo_seconds"]["mean"] < 300
    assert summary["faults"][0]["kind"] == "az_loss"
    assert "rto_seconds" in summary["metrics"]


def test_underprovisioned_twin_fails_and_names_the_check(tmp_path):
    proc, summary, _ = _run(tmp_path, "az_loss_underprovisioned", "--no-plots")
    assert proc.returncode == 1
    failed = {c["name"] for c in summary["checks"] if not c["passed"]}
    assert "RTO under 15 min" in failed
    assert "FAILED RTO under 15 min" in proc.stderr


@pytest.mark.slow
def test_az_loss_replications_report_confidence_intervals(tmp_path):
    proc, summary, _ = _run(tmp_path, "az_loss", "--no-plots", "--replications", "4",
                            "--set", "run.duration=12m")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    p95 = summary["metrics"]["latency_p95"]
    assert p95["ci_low"] <= p95["mean"] <= p95["ci_high"]
    assert len(set(summary["seeds"])) == 4
