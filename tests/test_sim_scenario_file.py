"""Strict scenarios: every mistake names the file, the field path and the line."""

import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
import yaml
from sim_helpers import ROOT, SCENARIOS, textbook, write

from sim import ScenarioError, load_scenario, read_scenario

SHIPPED = sorted(SCENARIOS.glob("**/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_is_valid(path):
    scenario = load_scenario(path)
    assert scenario.name
    for profile in scenario.profiles:
        load_scenario(path, profile=profile)


def _error(tmp_path: Path, text: str, *overrides: str) -> ScenarioError:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        read_scenario(path, overrides=overrides)
    return info.value


GOOD = yaml.safe_dump(textbook(), sort_keys=False)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_field_names_file_field_and_line(tmp_path):
    text = GOOD.replace("workers_per_zone: 8", "workers_per_zone: 8\n    wrokers: 3")
    err = _error(tmp_path, text)
    assert err.file.endswith("bad.yaml")
    assert err.path == "topology.engine.wrokers"
    assert err.line == _line_of(text, "wrokers")
    assert "unknown field" in str(err)
    assert f"bad.yaml:{err.line}: topology.engine.wrokers" in str(err)


def test_wrong_unit_is_refused_with_its_line(tmp_path):
    text = GOOD.replace("rate: 6.4/s", "rate: 6.4 per second")
    err = _error(tmp_path, text)
    assert err.path == "workload.tenants.acme.rate"
    assert err.line == _line_of(text, "per second")


def test_impossible_values(tmp_path):
    err = _error(tmp_path, GOOD.replace("workers_per_zone: 8", "workers_per_zone: 0"))
    assert err.path == "topology.engine.workers_per_zone"
    err = _error(tmp_path, GOOD.replace("crm.accounts: 100%", "crm.accounts: 90%"))
    assert "100%" in err.message and err.path == "workload.tenants.acme"
    err = _error(tmp_path, GOOD.replace("duration: 2h", "duration: 5m"))
    assert "warmup" in err.message


def test_references_are_checked(tmp_path):
    data = textbook(faults=[{"kind": "az_loss", "zone": "az-z", "at": "1m"}])
    err = _error(tmp_path, yaml.safe_dump(data, sort_keys=False))
    assert "az-z" in err.message and err.path.startswith("faults")


def test_duplicate_keys_are_refused(tmp_path):
    err = _error(tmp_path, GOOD + "name: again\n")
    assert "duplicate" in err.message and err.line == len(GOOD.splitlines()) + 1


def test_set_overrides_and_their_errors(tmp_path):
    path = write(tmp_path, textbook())
    scenario = load_scenario(path, overrides=["topology.engine.workers_per_zone=12"])
    assert scenario.topology.engine.workers_per_zone == 12
    with pytest.raises(ScenarioError, match="from --set topology.engine.wrokers=3"):
        load_scenario(path, overrides=["topology.engine.wrokers=3"])
    with pytest.raises(ScenarioError, match="dotted.path=value"):
        load_scenario(path, overrides=["no-equals-sign"])


def test_profiles(tmp_path):
    data = textbook(profiles={"small": {"workload.scale": 0.5}})
    path = write(tmp_path, data)
    assert load_scenario(path, profile="small").workload.scale == 0.5
    with pytest.raises(ScenarioError, match="unknown profile 'big'.*small"):
        load_scenario(path, profile="big")


def test_scenario_is_immutable(tmp_path):
    scenario = load_scenario(write(tmp_path, textbook()))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        scenario.name = "changed"  # type: ignore[misc]


def test_cli_exit_code_2_without_traceback(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(GOOD.replace("timeout: 1h", "timeuot: 1h"))
    for command in (["validate", str(bad)], ["run", str(bad)]):
        proc = subprocess.run([sys.executable, "-m", "sim", *command], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        line = _line_of(bad.read_text(), "timeuot")
        assert f"typo.yaml:{line}: topology.gateway.timeuot: unknown field" in proc.stderr


def test_cli_check_on_unknown_metric_is_bad_input(tmp_path):
    path = write(tmp_path, textbook(
        run={"duration": "2m", "warmup": "0s", "window": "10s"},
        checks=[{"metric": "latency_p59", "op": "<", "value": "1s"}]))
    proc = subprocess.run([sys.executable, "-m", "sim", "run", str(path), "--no-plots",
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "checks.0.metric" in proc.stderr and "latency_p59" in proc.stderr
