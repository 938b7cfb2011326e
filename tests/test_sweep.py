"""Sweeps: the grid, seeds, executors (serial, process pool, Dask), partial results, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim import ScenarioError
from sim.cli import main
from sim.run import replication_seeds
from sim.sweep import Factor, SweepInterrupted, plan_sweep, read_results, sweep

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
AZ_LOSS = ROOT / "scenarios" / "az_loss.yaml"
# A minute at 5% of peak: about 3,000 requests, a fraction of a second per run.
TINY = ["run.duration=1m", "run.warmup=10s", "workload.scale=0.05"]
FACTORS = {"topology.engine.workers_per_zone": [1, 4],
           "workload.tenants.acme.rate": ["200/s", "400/s"]}


def test_factor_parse_reads_yaml_values_and_keeps_brackets_together() -> None:
    assert Factor.parse("topology.engine.workers_per_zone=12, 18,24") == Factor(
        "topology.engine.workers_per_zone", (12, 18, 24)
    )
    assert Factor.parse("run.window=250ms,1s").values == ("250ms", "1s")
    assert Factor.parse("topology.zones=[a,b],[a,b,c]").values == (["a", "b"], ["a", "b", "c"])
    for bad in ("workload.scale", "workload.scale=", "=1,2", "workload.scale=1,,2"):
        with pytest.raises(ScenarioError):
            Factor.parse(bad)


def test_plan_is_the_grid_times_replications_with_common_seeds() -> None:
    plan = plan_sweep(BASELINE, FACTORS, replications=3, seed=7, overrides=TINY)
    assert len(plan.points) == 4 and len(plan.tasks) == 12
    assert plan.points[1] == {"topology.engine.workers_per_zone": 1,
                              "workload.tenants.acme.rate": "400/s"}
    seeds = replication_seeds(7, 3)
    assert [t.seed for t in plan.tasks] == seeds * 4  # the same seeds at every point
    third = plan.tasks[6].scenario  # point 2, replication 0
    assert third.topology.engine.workers_per_zone == 4
    assert third.workload.tenants["acme"].rate == 200.0


def test_sweep_frame_is_tidy_and_factors_take_effect() -> None:
    frame = sweep(BASELINE, {"workload.scale": [0.02, 0.05]}, replications=2, overrides=TINY[:2],
                  jobs=1)
    assert list(frame.columns[:4]) == ["workload.scale", "point", "replication", "seed"]
    assert frame[["point", "replication"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert {"latency_p95", "error_rate", "engine.utilization", "tenant.acme.requests",
            "checks_passed"} <= set(frame.columns)
    rate = frame.groupby("workload.scale")["request_rate"].mean()
    assert rate[0.05] / rate[0.02] == pytest.approx(2.5, rel=0.15)


def test_local_pool_and_dask_give_identical_frames(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    serial = sweep(BASELINE, FACTORS, replications=2, overrides=TINY, jobs=1)
    pooled = sweep(BASELINE, FACTORS, replications=2, overrides=TINY, jobs=2)
    out = tmp_path / "dask.parquet"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        on_dask = sweep(BASELINE, FACTORS, replications=2, overrides=TINY,
                        dask=cluster.scheduler_address)
        cli = ["sweep", str(BASELINE), "-R", "2", "--dask", cluster.scheduler_address,
               "--out", str(out), "--no-progress"]
        cli += [x for path, values in FACTORS.items()
                for x in ("--factor", f"{path}={','.join(map(str, values))}")]
        cli += [x for item in TINY for x in ("--set", item)]
        assert main(cli) == 0
    assert len(serial) == 8 and serial["requests"].nunique() > 1
    pd.testing.assert_frame_equal(serial, pooled, check_exact=True)
    pd.testing.assert_frame_equal(serial, on_dask, check_exact=True)
    pd.testing.assert_frame_equal(serial, pd.read_parquet(out), check_exact=True)


def test_outputs_round_trip_and_part_file_is_removed(tmp_path: Path) -> None:
    for name in ("r.parquet", "r.csv"):
        out = tmp_path / name
        frame = sweep(BASELINE, {"slo.error_rate": ["1%", 0.02]}, overrides=TINY, jobs=1, out=out)
        back = read_results(out)  # mixed types are kept as text, which Parquet accepts
        assert back.shape == frame.shape and list(back["slo.error_rate"]) == ["1%", "0.02"]
        assert not (tmp_path / f"{name}.partial.jsonl").exists()


def test_map_valued_factors_become_text_columns() -> None:
    lags = [{"dist": "constant", "value": "1s"}, {"dist": "constant", "value": "2s"}]
    frame = sweep(BASELINE, {"topology.metadata.replication_lag": lags}, overrides=TINY, jobs=1)
    assert list(frame["topology.metadata.replication_lag"]) == [
        '{"dist": "constant", "value": "1s"}', '{"dist": "constant", "value": "2s"}']
    assert frame.groupby("topology.metadata.replication_lag").size().tolist() == [1, 1]


def test_interrupt_keeps_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "partial.parquet"
    seen: list[dict] = []

    def stop_after_three(row: dict) -> None:
        seen.append(row)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted) as stop:
        sweep(BASELINE, FACTORS, replications=2, overrides=TINY, jobs=2, out=out,
              on_result=stop_after_three)
    assert stop.value.total == 8 and len(stop.value.frame) == 3
    written = read_results(out)
    assert len(written) == 3
    assert sorted(zip(written["point"], written["replication"])) == sorted(
        (row["point"], row["replication"]) for row in seen
    )


def test_ctrl_c_on_the_cli_writes_what_is_done(tmp_path: Path) -> None:
    out = tmp_path / "cli.csv"
    part = tmp_path / "cli.csv.partial.jsonl"
    command = [sys.executable, "-m", "sim", "sweep", str(BASELINE), "-R", "12", "-j", "2",
               "--out", str(out), "--no-progress", "--set", "run.duration=4m",
               "--set", "workload.scale=0.2"]
    # As from a terminal: SIGINT at its default, even when the suite was started in the
    # background (`cmd &` ignores SIGINT, the child inherits that and Python then installs
    # no KeyboardInterrupt handler: the 07:58 rehearsal's sweep ran to the end and exited 0).
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and part.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    rows_before = [json.loads(line) for line in part.read_text().splitlines()]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    written = read_results(out)
    assert len(rows_before) <= len(written) < 12
    assert "interrupted" in err and not part.exists()


def test_bad_factor_path_exits_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(AZ_LOSS), "--factor", "topology.engine.workers_per_zon=14,24",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "az_loss.yaml:" in err and "topology.engine.workers_per_zon" in err
    assert "unknown field" in err and "--factor" in err


@pytest.mark.parametrize("args", [
    ["--factor", "topology.engine.workers_per_zone=0"],  # fails validation (ge=1)
    ["--factor", "topology.engine.workers_per_zone"],
    ["--factor", "workload.scale=1", "--factor", "workload.scale=2"],
    ["-R", "0"],
    ["--out", "results.xlsx"],
])
def test_bad_sweep_input_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(BASELINE), "--no-progress", *args]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_sweep_writes_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.parquet"
    args = ["sweep", str(BASELINE), "-f", "workload.scale=0.02,0.04", "-R", "2", "-j", "1",
            "--out", str(out), "--no-progress"] + [x for item in TINY[:2] for x in ("--set", item)]
    assert main(args) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 4 and frame["checks_passed"].all()
    assert "4 runs (2 points x 2 replications)" in capsys.readouterr().err


def test_scope_option_adds_metric_at_scope_columns() -> None:
    # outside_recovery comes from the scenario's checks, before_fault from scopes=.
    frame = sweep(AZ_LOSS, replications=1, jobs=1, scopes=["before_fault"],
                  overrides=["run.duration=2m", "run.warmup=10s", "faults.0.at=1m",
                             "workload.scale=0.05"])
    assert {"engine.utilization@before_fault", "latency_p95@outside_recovery",
            "rto_seconds", "rpo_seconds"} <= set(frame.columns)
