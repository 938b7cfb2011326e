"""``python -m sim conform`` (issue 18): the comparison of a prediction with a measurement,
on hand-built predictions and facts, and the command's exit codes with a stand-in runner
that writes simulated facts where the real one writes measured ones."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import textbook, write

import sim.conform_run
from labcore.facts import save_facts
from labcore.metrics import compute_metrics
from labcore.scenario_file import read_scenario
from sim.cli import main
from sim.conform import (
    CheckComparison,
    Measured,
    Predicted,
    measure,
    overall,
    prediction_interval,
    runner_not_measured,
)
from sim.conform_run import conformance_table
from sim.run import simulate


def _row(predicted: Predicted, measured: Measured, metric: str = "latency_p95",
         ) -> CheckComparison:
    return CheckComparison("c", metric, "run", "<=", 1.0, predicted, measured)


PASS = Predicted(True, 0.9, 0.2, 0.8, 0.5, 10, 0)


def test_prediction_interval_is_the_spread_of_single_runs():
    values = [float(v) for v in range(1, 11)]
    assert prediction_interval(values) == (1.0, 10.0)  # 10 runs: min and max
    many = [float(v) for v in range(0, 101)]
    assert prediction_interval(many) == (2.0, 98.0)
    assert prediction_interval([3.0, None, 1.0, 2.0]) == (1.0, None)  # a run never recovered
    assert prediction_interval([]) == (None, None)


def test_agree_disagree_inside_outside_not_measured():
    agree = _row(PASS, Measured(0.5, True))
    assert agree.agree and agree.inside
    outside = _row(PASS, Measured(0.05, True))
    assert outside.agree and outside.inside is False
    disagree = _row(PASS, Measured(1.2, False))
    assert disagree.agree is False and disagree.inside is False
    skipped = _row(PASS, Measured(None, None, "locust cannot observe it"))
    assert skipped.agree is None and skipped.inside is None and not skipped.compared
    assert overall([agree, outside, skipped]) and not overall([agree, disagree])
    assert not overall([skipped])  # nothing compared: no agreement shown


def test_alike_counts_the_replications_that_judged_as_the_real_run_did():
    coin = Predicted(False, 0.4, 77.0, 793.0, 347.0, 10, 0)  # fails on its mean, 4 of 10 pass
    lucky = _row(coin, Measured(204.4, True), "rpo_seconds")
    assert lucky.agree is False and lucky.alike == 4 and lucky.as_dict()["alike"] == 4
    assert _row(coin, Measured(500.0, False), "rpo_seconds").alike == 6
    never = _row(Predicted(True, 1.0, 0.2, 0.8, 0.5, 10, 0), Measured(1.2, False))
    assert never.agree is False and never.alike == 0  # no replication failed: a real finding
    assert _row(PASS, Measured(None, None, "not observable")).alike is None
    table = conformance_table("s", [lucky, never], None)
    cells = [str(c) for c in table.columns[-1].cells]
    assert cells == ["[bold red]no[/bold red] (4/10 runs alike)",
                     "[bold red]no[/bold red] (0/10 runs alike)"]


def test_numpy_values_make_a_plain_json_row():
    # The chaos runner's control_plane.utilization came back as numpy.float64, `inside` was
    # a numpy.bool_ and writing conformance.json failed after a 16-minute run (03:13).
    pred = Predicted(True, 1.0, np.float64(0.0129), np.float64(0.0133), np.float64(0.013), 10, 0)
    row = _row(pred, Measured(np.float64(0.0145), True), "control_plane.utilization")
    assert row.inside is False and type(row.inside) is bool
    assert json.loads(json.dumps(sim.conform_run._json_safe(row.as_dict())))["inside"] is False
    assert json.dumps(sim.conform_run._json_safe({"a": [np.bool_(True), np.int64(3)]})) == \
        '{"a": [true, 3]}'


def test_a_run_that_did_not_recover_is_inside_only_if_a_replication_did_not_either():
    open_top = Predicted(False, 0.7, 120.0, None, None, 10, 3)
    assert _row(open_top, Measured(None, False), "rto_seconds").inside
    assert _row(open_top, Measured(5000.0, False), "rto_seconds").inside
    assert not _row(PASS, Measured(None, False), "rto_seconds").inside
    assert _row(PASS, Measured(None, False), "rto_seconds").as_dict()["agree"] is False


def test_runner_not_measured_reads_both_runners_summaries():
    locust = {"skipped_checks": [{"name": "e", "metric": "engine.utilization", "over": "run",
                                  "reason": "locust cannot observe engine.utilization"}]}
    chaos = {"targets": [{"metric": "rto_seconds", "over": "run", "not_measured": None},
                         {"metric": "canary.rolled_back", "over": "run",
                          "not_measured": "not measured by this chaos run"}]}
    assert runner_not_measured(locust) == {
        ("engine.utilization", "run"): "locust cannot observe engine.utilization"}
    assert runner_not_measured(chaos) == {
        ("canary.rolled_back", "run"): "not measured by this chaos run"}


CHECKS = [{"name": "p95", "metric": "latency_p95", "op": "<=", "value": "6s"},
          {"name": "util", "metric": "engine.utilization", "op": "<=", "value": "95%"}]


def _scenario(tmp_path: Path, **changes):
    data = textbook(run={"duration": "10m", "warmup": "1m", "window": "1m"}, checks=CHECKS,
                    **changes)
    return read_scenario(write(tmp_path, data)).scenario


def test_measure_recomputes_the_metrics_with_labcore_and_the_registry(tmp_path):
    scenario = _scenario(tmp_path)
    facts = simulate(scenario, seed=7)
    measured = measure(scenario, facts, "locust", faults_applied=False)
    p95, util = measured.values()
    assert p95.value == compute_metrics(facts)["latency_p95"] and p95.passed is not None
    assert util.passed is None and "locust" in util.reason  # the registry's word


# -- the command, with a runner that writes simulated facts ---------------------------


@pytest.fixture
def sandbox_dir(tmp_path: Path) -> Path:
    box = tmp_path / "sb"
    box.mkdir()
    (box / "state.json").write_text("{}")
    return box


def _fake_runner(monkeypatch, slow: float):
    """The 'real' runner: the scenario simulated with another seed, its engine ``slow``
    times slower; writes facts.npz and a Locust-like summary.json."""
    def run(source, args, out):
        out.mkdir(parents=True, exist_ok=True)
        data = dict(source.data)
        service = dict(data["topology"]["engine"]["service_time"], mean=f"{slow}s")
        data["topology"] = dict(data["topology"],
                                engine=dict(data["topology"]["engine"], service_time=service))
        other = read_scenario(write(out, data, "measured.yaml")).scenario
        save_facts(out / "facts.npz", simulate(other, seed=99))
        (out / "summary.json").write_text(json.dumps({"skipped_checks": []}))
        return 0, ""
    monkeypatch.setattr(sim.conform_run, "_run_runner", run)


def _conform(tmp_path: Path, sandbox_dir: Path, *extra: str) -> int:
    path = write(tmp_path, textbook(run={"duration": "10m", "warmup": "1m", "window": "1m"},
                                    checks=CHECKS), "textbook.yaml")
    return main(["conform", str(path), "--runner", "locust", "--dir", str(sandbox_dir),
                 "-R", "4", "--profile", "", "--out", str(tmp_path / "out"), *extra])


def test_agreeing_run_exits_0_and_writes_json_and_overlay(tmp_path, sandbox_dir, monkeypatch):
    _fake_runner(monkeypatch, slow=1.0)
    assert _conform(tmp_path, sandbox_dir) == 0
    report = json.loads((tmp_path / "out" / "conformance.json").read_text())
    assert report["agree"] and report["runner"] == "locust" and report["replications"] == 4
    p95, util = report["scenarios"][0]["checks"]
    assert p95["agree"] and p95["predicted"]["p_pass"] == 1.0
    assert p95["predicted"]["low"] <= p95["predicted"]["high"]
    assert util["agree"] is None and util["measured"]["reason"]
    assert (tmp_path / "out" / "textbook" / "overlay.png").stat().st_size > 10_000


def test_disagreeing_run_exits_1(tmp_path, sandbox_dir, monkeypatch):
    _fake_runner(monkeypatch, slow=1.4)  # rho 1.12: the queue grows, P95 far over 6 s
    assert _conform(tmp_path, sandbox_dir) == 1
    p95 = json.loads((tmp_path / "out" / "conformance.json").read_text())[
        "scenarios"][0]["checks"][0]
    assert p95["agree"] is False and p95["inside"] is False and p95["measured"]["passed"] is False


def test_a_runner_refusing_a_scenario_exits_2_after_writing_the_report(
        tmp_path, sandbox_dir, monkeypatch):
    monkeypatch.setattr(sim.conform_run, "_run_runner",
                        lambda source, args, out: (2, "bad input: cannot express region_loss"))
    assert _conform(tmp_path, sandbox_dir) == 2
    entry = json.loads((tmp_path / "out" / "conformance.json").read_text())["scenarios"][0]
    assert entry["runner_exit"] == 2 and "refused" in entry["note"] and not entry["agree"]
    assert all(row["agree"] is None for row in entry["checks"])


def test_bad_input_exits_2_without_traceback(tmp_path, sandbox_dir, capsys):
    bad = write(tmp_path, textbook(checks=[{"metric": "latency_p95", "op": "~", "value": 1}]),
                "bad.yaml")
    assert main(["conform", str(bad), "--runner", "locust", "--dir", str(sandbox_dir),
                 "--profile", ""]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(bad))}:\d+: checks\.0\.op", err), err
    assert "Traceback" not in err
    good = write(tmp_path, textbook(), "good.yaml")
    assert main(["conform", str(good), "--runner", "locust", "--dir",
                 str(tmp_path / "nowhere")]) == 2
    assert "no running stand-in" in capsys.readouterr().err
    assert main(["conform", str(good), "--runner", "chaos", "--dir", str(sandbox_dir),
                 "--profile", ""]) == 2
    assert "no chaos experiment for scenario 'textbook'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["conform", str(good), "--runner", "gatling", "--dir", str(sandbox_dir)])
    assert exit_info.value.code == 2


def test_overlay_series_follow_the_checks_tenants(tmp_path):
    from labcore.metrics import window_table
    from sim.conform_plot import series_of, window_series

    assert series_of("tenants_except.umbrella.latency_p95") == (
        "latency_p95", "tenants_except.umbrella")
    assert series_of("tenant.acme.error_rate") == ("error_rate", "tenant.acme")
    assert series_of("incident.latency_p95") == ("latency_p95", "")
    assert series_of("engine.utilization") == ("engine.utilization", "")
    assert series_of("rto_seconds") == ("latency_p95", "")
    facts = simulate(_scenario(tmp_path), seed=3)
    table = window_table(facts)
    assert window_series(facts, "latency_p95", "tenant.acme").tolist() == pytest.approx(
        table["latency_p95"].tolist(), nan_ok=True)  # the only tenant: all the traffic
    assert window_series(facts, "error_rate", "").tolist() == pytest.approx(
        table["error_rate"].tolist(), nan_ok=True)
    nobody = window_series(facts, "latency_p95", "tenants_except.acme")
    assert len(nobody) == len(table) and all(v != v for v in nobody)  # NaN: no other tenant
    # ... and their band is NaN too, without numpy's "All-NaN slice" warning on the console
    # (it printed in the middle of `sim conform`'s table for regional_failover)
    from sim.conform_plot import _band

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, low, high = _band([facts, simulate(_scenario(tmp_path), seed=4)], "latency_p95",
                             "tenants_except.acme")
    assert np.isnan(low).all() and np.isnan(high).all()


def test_runner_commands(tmp_path):
    from sim.conform_run import REPO, ROLLBACK_MARGIN, RUNNER_MARGIN, runner_command

    flood = read_scenario(REPO / "scenarios" / "rate_limit_flood.yaml", "standin")
    locust = runner_command(flood, "locust", tmp_path / "sb", "standin", ["run.window=5s"],
                            tmp_path / "out")
    assert locust[1:5] == ["-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py")]
    assert "--inject-faults" not in locust  # the load sends the surge itself
    assert ["--scenario-set", "run.window=5s"] == locust[locust.index("--scenario-set"):][:2]
    assert locust[locust.index("--results-dir") + 1] == str(tmp_path / "out")
    stampede = read_scenario(REPO / "scenarios" / "cache_stampede.yaml", "standin")
    assert "--inject-faults" in runner_command(stampede, "locust", tmp_path, "standin", [],
                                               tmp_path)
    cutover = read_scenario(REPO / "scenarios" / "blue_green_cutover.yaml", "standin")
    assert "--inject-faults" in runner_command(cutover, "locust", tmp_path, "standin", [],
                                               tmp_path)  # the release is the timeline
    capped = read_scenario(REPO / "scenarios" / "rate_limit_flood_mitigated.yaml", "standin")
    assert "--inject-faults" in runner_command(capped, "locust", tmp_path, "standin", [],
                                               tmp_path)  # the operator's cap is a call
    chaos = runner_command(stampede, "chaos", tmp_path / "sb", "standin", [], tmp_path / "out")
    assert chaos[1:4] == ["-m", "chaosomnisql", "run"]
    assert chaos[4] == str(REPO / "chaos" / "experiments" / "cache_stampede.yaml")
    assert chaos[5:9] == ["--dir", str(tmp_path / "sb"), "--results", str(tmp_path / "out")]
    # the wrapper stops and rolls back before conform's own limit would kill it
    limit = stampede.scenario.run.duration + RUNNER_MARGIN - ROLLBACK_MARGIN
    assert chaos[9:] == ["--timeout", f"{limit:g}"] and limit > 0
