"""The pre-flight twin gate: the simulator's blast radius against the experiment's safeguards.

Fast: no stand-in. A refusal exits 3 with the figures before ``chaos`` is started (a
fake ``chaos`` on PATH would log its start: it never does); a pass goes on to the next
step (here: "no running sandbox", exit 2); ``--force`` overrides a refusal.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chaos_helpers import EXPERIMENTS, REPO
from chaosomnisql.cli import main
from chaosomnisql.twin_gate import Figure, Safeguards, _figure, safeguards, zones_lost

from sim import read_scenario

pytestmark = pytest.mark.timeout(120)
FAKES = Path(__file__).parent / "fakes"
AZ_LOSS = EXPERIMENTS / "az_loss.yaml"


def test_a_prediction_beyond_the_safeguards_is_refused_before_anything_runs(
        tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    env = {**os.environ, "PATH": f"{FAKES}:{os.environ['PATH']}", "FAKE_LOG": str(log),
           "PYTHONPATH": f"{REPO}:{REPO / 'chaos'}", "OMNISQL_MAX_ZONES_LOST": "0"}
    proc = subprocess.run([sys.executable, "-m", "chaosomnisql", "run", str(AZ_LOSS),
                           "--target", "eks", "--results", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=90)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "twin gate: REFUSED" in proc.stdout
    assert "REFUSE zones lost: predicted 1 (single runs 1..1) vs limit 0" in proc.stdout
    # 10 s or 20 s by replication: the balancer's probes run at a random phase (52d9e67)
    assert "ok     rto_seconds (abort time): predicted 14 (single runs 10..20)" in proc.stdout
    assert not log.exists()  # chaos was never started: nothing injected
    assert not (tmp_path / "out").exists()


def test_a_prediction_within_the_safeguards_passes_on(tmp_path: Path, capsys) -> None:
    code = main(["run", str(AZ_LOSS), "--twin-gate", "--dir", str(tmp_path / "none")])
    out, err = capsys.readouterr()
    assert "twin gate: pass" in out and "REFUSE" not in out
    assert code == 2 and "no running sandbox" in err  # the gate let it through


def test_force_overrides_a_refusal(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OMNISQL_MAX_ERROR_RATE", "0.001")
    code = main(["run", str(AZ_LOSS), "--twin-gate", "--force", "--dir", str(tmp_path / "no")])
    out, err = capsys.readouterr()
    assert "REFUSE peak window error rate" in out and "overridden by --force" in out
    assert code == 2 and "no running sandbox" in err


def test_the_gate_is_off_for_the_sandbox_unless_asked(tmp_path: Path, capsys,
                                                      monkeypatch) -> None:
    monkeypatch.setenv("OMNISQL_MAX_ZONES_LOST", "0")
    assert main(["run", str(AZ_LOSS), "--dir", str(tmp_path / "none")]) == 2
    assert "twin gate" not in capsys.readouterr().out


def test_safeguards_come_from_the_experiment_and_the_environment() -> None:
    import yaml

    scenario = read_scenario("scenarios/az_loss.yaml", profile="standin").scenario
    config = yaml.safe_load(AZ_LOSS.read_text())["configuration"]
    # The recovery probe watches the RTO target + sustain (900 + 120 s) but never past the
    # run's end: the zone is lost at 120 s of a 300 s run (issue 18's timeline).
    assert (scenario.faults[0].at, scenario.run.duration) == (120.0, 300.0)
    assert safeguards(config, scenario, {}) == Safeguards(0.9, 1, 300.0 - 120.0)
    longer = {"OMNISQL_LOAD_SECONDS": "2000"}
    assert safeguards(config, scenario, longer) == Safeguards(0.9, 1, 900.0 + 120.0)
    short = {"OMNISQL_RECOVERY_TIMEOUT": "30", "OMNISQL_SUSTAIN": "8",
             "OMNISQL_MAX_ZONES_LOST": "2", "OMNISQL_ABORT_SECONDS": ""}
    assert safeguards(config, scenario, short) == Safeguards(0.9, 2, 38.0)
    assert safeguards(config, scenario, {"OMNISQL_ABORT_SECONDS": "60"}).abort_seconds == 60.0


def test_zones_lost_and_a_replication_that_never_recovers() -> None:
    regional = read_scenario("scenarios/regional_failover.yaml", profile="standin").scenario
    assert zones_lost(regional) == len(regional.topology.zones) == 3
    az = read_scenario("scenarios/az_loss.yaml", profile="standin").scenario
    assert zones_lost(az) == 1
    figure = _figure("rto", [10.0, None, 20.0], limit=1000.0)
    assert math.isinf(figure.predicted) and figure.missing == 1 and figure.breached
    assert not Figure("x", 1.0, 1.0, 1.0, 1.0).breached  # at the limit is within it


def test_the_regional_experiment_passes_its_own_gate_and_refuses_a_tighter_one(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """Issue 18: regional_failover now loses the region on the stand-in; its safeguards
    allow all 3 zones and a total outage (the experiment's point), so the gate passes it on
    those and judges its RTO. With the other experiments' limits it is refused."""
    regional = EXPERIMENTS / "regional_failover.yaml"
    code = main(["run", str(regional), "--twin-gate", "--dir", str(tmp_path / "none")])
    out, err = capsys.readouterr()
    assert "twin gate: pass" in out and "REFUSE" not in out, out
    assert "zones lost: predicted 3 (single runs 3..3) vs limit 3" in out
    assert code == 2 and "no running sandbox" in err
    monkeypatch.setenv("OMNISQL_MAX_ZONES_LOST", "1")
    monkeypatch.setenv("OMNISQL_MAX_ERROR_RATE", "0.9")
    assert main(["run", str(regional), "--twin-gate", "--dir", str(tmp_path / "none")]) == 3
    out = capsys.readouterr().out
    assert "REFUSE zones lost: predicted 3" in out and "REFUSE peak window error rate" in out
