"""``python -m sim calibrate`` fits the metadata replica's lag (the RPO of a primary loss)
from the stand-in's lag samples into both parameters that draw an RPO (issue 18)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console

from labcore.scenario_file import read_scenario
from sim import calibrate_io
from sim.calibrate import calibration_overrides
from sim.calibrate_lag import LAG_TARGETS, MIN_SAMPLES, fit_samples, lag_overlay
from sim.cli import main

REPO = Path(__file__).resolve().parents[1]
Z99 = 2.3263478740408408


def _lag(samples: Any, idle: int = 0) -> dict[str, Any]:
    return {"interval_seconds": 1.0, "capacity": 3600, "samples": [float(s) for s in samples],
            "idle": idle, "unavailable": 0, "at_loss": None}


def test_the_fit_recovers_a_known_lognormal_from_raw_samples() -> None:
    rng = np.random.default_rng(3)
    median, p99 = 0.002, 0.012  # milliseconds: PostgreSQL streaming on loopback
    samples = rng.lognormal(math.log(median), math.log(p99 / median) / Z99, 600)
    fit = fit_samples(samples)
    assert fit.median == pytest.approx(median, rel=0.1)
    assert fit.p99 == pytest.approx(p99, rel=0.25)
    assert fit.ks < 0.06
    worse = fit_samples(rng.uniform(0.001, 0.003, 600))  # not a lognormal: fits worse
    assert worse.ks > fit.ks


def test_the_overlay_writes_both_rpo_parameters_and_reports_the_fit() -> None:
    rng = np.random.default_rng(5)
    samples = rng.lognormal(math.log(0.003), 0.5, 200)
    overrides, fits, not_fitted = lag_overlay(_lag([*samples, 0.0], idle=7))
    assert list(overrides) == list(LAG_TARGETS) and not not_fitted
    value = overrides["topology.metadata.replication_lag"]
    assert value["dist"] == "lognormal" and value["median"].endswith("us")
    assert overrides["failover.metadata.lag"] == value
    assert overrides["failover.metadata.lag"] is not value  # no YAML alias in the file
    (row,) = fits
    assert row["observations"] == 200 and row["idle"] == 7  # the zero is not a sample
    assert row["quantiles"]["p50"]["measured"] == pytest.approx(float(np.median(samples)))
    assert row["quantiles"]["p50"]["fitted"] == pytest.approx(row["median"])
    assert 0.0 <= row["ks"] < 0.15


def test_too_few_samples_leave_the_scenarios_lag() -> None:
    overrides, fits, (row,) = lag_overlay(_lag([0.002] * (MIN_SAMPLES - 1), idle=50))
    assert overrides == {} and fits == []
    assert f"fewer than {MIN_SAMPLES}" in row["reason"] and "is left" in row["reason"]
    overrides, fits, (row,) = lag_overlay(None)  # a stand-in without the samples
    assert overrides == {} and "serves no replica lag" in row["reason"]


def _calibrated(tmp_path: Path, scenario: str) -> tuple[Any, Any]:
    rng = np.random.default_rng(11)
    overrides, fits, _ = lag_overlay(_lag(rng.lognormal(math.log(0.002), 0.4, 300)))
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump({"overrides": overrides, "fit": fits, "not_fitted": []}))
    file = REPO / "scenarios" / scenario
    raw = yaml.safe_load(file.read_text())
    items = calibration_overrides(path, raw)
    return items, read_scenario(file, "standin", items).scenario


def test_a_calibrated_standin_predicts_the_measured_lag(tmp_path: Path) -> None:
    items, regional = _calibrated(tmp_path, "regional_failover.yaml")
    assert sorted(i.split("=")[0] for i in items) == sorted(LAG_TARGETS)
    rng = np.random.default_rng(0)
    for dist in (regional.topology.metadata.replication_lag, regional.failover.metadata.lag):
        draws = [dist.sampler(rng)() for _ in range(4000)]
        assert float(np.median(draws)) == pytest.approx(0.002, rel=0.1)  # not 0.5 s / 1 s
    # az_loss has no failover: section: the calibration does not add one
    items, az = _calibrated(tmp_path, "az_loss.yaml")
    assert [i.split("=")[0] for i in items] == ["topology.metadata.replication_lag"]
    assert az.failover is None


def test_calibrate_command_fits_the_lag_beside_the_histograms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    monkeypatch.setattr(calibrate_io, "fetch_metrics", lambda d: "")
    monkeypatch.setattr(calibrate_io, "fetch_lag",
                        lambda d: _lag(rng.lognormal(math.log(0.004), 0.6, 120)))
    monkeypatch.setattr(calibrate_io, "fetch_config", lambda d: {"providers": {}})
    out = tmp_path / "cal.yaml"
    assert main(["calibrate", "--from-sandbox", str(tmp_path), "--out", str(out)]) == 0
    written = yaml.safe_load(out.read_text())
    assert set(written["overrides"]) == set(LAG_TARGETS)
    assert written["fitted_on"] == {}  # a lag fit is not a provider's: nothing to record
    assert [row["series"] for row in written["fit"]] == ["metadata.replica_lag"]
    console = Console(width=240, record=True)  # the table as printed, on a wide terminal
    console.print(calibrate_io.fit_table(written))
    (line,) = [t for t in console.export_text().splitlines() if "metadata.replica_lag" in t]
    assert " 120 " in line and "yes" in line  # its n, and written to the overlay
    monkeypatch.setattr(calibrate_io, "fetch_lag", lambda d: _lag([0.004] * 5))
    assert main(["calibrate", "--from-sandbox", str(tmp_path), "--out", str(out)]) == 1
    assert "fewer than" in yaml.safe_load(out.read_text())["not_fitted"][0]["reason"]
