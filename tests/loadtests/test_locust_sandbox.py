"""Short headless Locust runs of scenarios against the sandbox (the staging stand-in).

Each run is seconds long: the scenario's standin profile with a shortened run through
``--scenario-set`` (the simulator's ``--set``), so a simulated run of the same overrides
is directly comparable.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import Standin, child_env, locust_command, run_locust
from lt_helpers import AZ_LOSS, BASELINE, SURGE

from labcore.metrics import window_table
from loadtests.convert import history_windows, plot_comparison
from sim import read_scenario, simulate

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]
SHORT = ["--scenario-set", "run.duration=20s", "--scenario-set", "run.warmup=5s",
         "--scenario-set", "run.window=5s"]


def _run(standin: Standin, out: Path, scenario: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = run_locust("--scenario", str(scenario), "--scenario-profile", "standin", *extra,
                      "--sandbox-dir", str(standin.root), "--results-dir", str(out),
                      "--csv", str(out / "locust"), "--csv-full-history",
                      "--html", str(out / "report.html"), timeout=150)
    assert (out / "summary.json").exists(), proc.stderr[-3000:]
    return proc.returncode, json.loads((out / "summary.json").read_text())


def _metric(summary: dict[str, Any], name: str) -> float:
    return float(summary["metrics"][name]["mean"])


def test_baseline_holds_its_slo_and_writes_comparable_results(standin: Standin,
                                                              tmp_path: Path) -> None:
    code, summary = _run(standin, tmp_path, BASELINE, *SHORT)
    assert code == 0, summary["checks"]
    assert summary["passed"] and [c["metric"] for c in summary["checks"]] == [
        "latency_p95", "error_rate"]
    assert summary["skipped_checks"][0]["metric"] == "engine.utilization"
    # 20 req/s (1,000/s x 2%) over the 15 measured seconds: Poisson, +/- 5 sd, and the
    # generator must not have fallen behind its schedule
    requests = _metric(summary, "requests")
    assert abs(requests - 300) < 5 * 300 ** 0.5, (requests, _metric(summary, "loadgen.late"))
    assert _metric(summary, "loadgen.bad_request") == 0
    assert (_metric(summary, "tenant.acme.requests")
            > 2 * _metric(summary, "tenant.umbrella.requests"))
    table = pd.read_csv(tmp_path / "timeseries.csv")
    assert table["time"].tolist() == [0.0, 5.0, 10.0, 15.0]
    assert {"latency_p95", "error_rate", "throughput", "cache.hit_ratio"} <= set(table.columns)
    assert not any(c.startswith("connector.") for c in table.columns)
    for name in ("locust_stats.csv", "locust_stats_history.csv", "report.html", "overview.png"):
        assert (tmp_path / name).exists(), name
    # Locust's own history converts to the same windows' request counts. It starts with
    # Locust's process, so it is read from the run's start (started_at; read from its first
    # row, CI once saw the totals 24 apart, 1.2 s of traffic, on a busy machine). Its
    # rows come about once a second with whole-second timestamps, so a boundary is placed to
    # within half a second (10 requests at 20/s), and Locust counts a request when it ends,
    # the recorder when it is sent: up to 40 per window; over the run the totals agree closely.
    history = history_windows(pd.read_csv(tmp_path / "locust_stats_history.csv"), 5.0, 5.0,
                              start=summary["started_at"])
    ours, theirs = table["requests"].tolist(), history["requests"].tolist()
    assert len(theirs) >= 3, (ours, theirs)
    assert all(abs(a - b) <= 40 for a, b in zip(ours, theirs)), (ours, theirs)
    n = min(len(ours), len(theirs))
    assert abs(sum(ours[:n]) - sum(theirs[:n])) <= max(10, 0.05 * sum(ours[:n])), (ours, theirs)
    # the simulator's run of the same scenario and overrides has the same windows: one figure
    simulated = window_table(simulate(read_scenario(BASELINE, "standin", [
        "run.duration=20s", "run.warmup=5s", "run.window=5s"]).scenario))
    assert simulated["time"].tolist() == table["time"].tolist()
    plot_comparison({"sandbox": table, "simulated": simulated}, tmp_path / "compare.png",
                    p95_slo=1.5, error_slo=0.01)
    assert (tmp_path / "compare.png").stat().st_size > 10_000


def test_the_gate_fails_a_run_locust_itself_would_pass(standin: Standin, tmp_path: Path) -> None:
    code, summary = _run(standin, tmp_path, BASELINE, *SHORT,
                         "--scenario-set", "checks.0.value=1ms")  # P95 <= 1 ms cannot hold
    assert code == 1
    p95, errors = summary["checks"]
    assert not p95["passed"] and p95["observed"] > 0.001 and errors["passed"]
    stats = pd.read_csv(tmp_path / "locust_stats.csv")
    assert int(stats[stats["Name"] == "Aggregated"]["Failure Count"].iloc[0]) == 0


def test_az_loss_injected_through_the_fault_api_recovers(standin: Standin, tmp_path: Path) -> None:
    code, summary = _run(standin, tmp_path, AZ_LOSS, "--scenario-set", "run.duration=35s",
                         "--scenario-set", "run.warmup=5s", "--scenario-set", "run.window=5s",
                         "--scenario-set", "faults.0.at=12s", "--scenario-set", "slo.sustain=10s",
                         # The stand-in now detects the loss at the scenario's health-check
                         # timing (issue 18): 5 s x 3 failures would not fit a 35 s run.
                         "--scenario-set", "topology.gateway.health_check.interval=1s",
                         "--inject-faults")
    assert summary["faults_done"][0][1:] == ["POST", "/faults/az/az-a/lose", 200]
    assert 11.9 <= summary["faults_done"][0][0] <= 13.0  # fired on time (run time, s)
    assert standin.get("/faults")["zones_lost"] == []  # reset at the end
    judged = {c["metric"] for c in summary["checks"]}
    assert "rto_seconds" in judged and {s["metric"] for s in summary["skipped_checks"]} == {
        "rpo_seconds"}
    assert code == 0, summary["checks"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_distributed_master_and_worker_with_a_noisy_tenant(standin: Standin,
                                                           tmp_path: Path) -> None:
    """Master + one worker on loopback; umbrella floods at 10x from 10 s to 30 s."""
    port = _free_port()
    worker = subprocess.Popen(
        [*locust_command("--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                         "--sandbox-dir", str(standin.root))],
        cwd=Path(__file__).resolve().parents[2], env=child_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc = run_locust("--master", "--expect-workers", "1", "--master-bind-port", str(port),
                          "--scenario", str(BASELINE), "--scenario-profile", "standin",
                          "--scenario-set", SURGE, "--scenario-set", "run.duration=30s",
                          "--scenario-set", "run.warmup=5s", "--scenario-set", "run.window=5s",
                          "--sandbox-dir", str(standin.root), "--results-dir", str(tmp_path),
                          timeout=150)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0, (summary["checks"], proc.stderr[-3000:])
    # (18/s normal, 20/s noisy peak) x 19 s, the longest query (3 x 5 s + 2 backoffs of 2 s)
    assert summary["users"] == 342 + 380
    # every request was made on the worker and reached the master's gate:
    # umbrella 2/s, then 20/s after a 4 s ramp from 10 s to 30 s; measured from 5 s
    expected = 2 * 5 + (2 + 20) / 2 * 4 + 20 * 16
    assert abs(_metric(summary, "tenant.umbrella.requests") - expected) < 5 * expected ** 0.5
    assert abs(_metric(summary, "tenant.acme.requests") - 8 * 25) < 5 * (8 * 25) ** 0.5


def test_gate_reads_its_slis_from_prometheus(standin: Standin, tmp_path: Path) -> None:
    """``--slis-from prometheus``: the same short baseline judged on the sandbox's
    Prometheus; both readings in the summary, and they agree within the histogram's
    resolution (the P95 is interpolated inside a bucket, <= 0.25 s near the baseline's)."""
    assert standin.state.get("prometheus_url"), "the sandbox runs Prometheus by default"
    code, summary = _run(standin, tmp_path, BASELINE, *SHORT, "--slis-from", "prometheus")
    readings = summary["slis_from"]["readings"]
    assert summary["slis_from"]["source"] == "prometheus", summary["slis_from"]
    assert 15 <= summary["slis_from"]["seconds"] <= 30
    assert all(r["prometheus"] is not None for r in readings.values()), readings
    judged = {c["metric"]: c["observed"] for c in summary["checks"]}
    assert judged["error_rate"] == readings["error_rate"]["prometheus"]
    assert judged["latency_p95"] == readings["latency_p95"]["prometheus"]
    assert abs(readings["error_rate"]["prometheus"] - readings["error_rate"]["client"]) < 0.01
    assert abs(readings["latency_p95"]["prometheus"]
               - readings["latency_p95"]["client"]) <= 0.25, readings
    assert code == 0 and summary["passed"], summary["checks"]
