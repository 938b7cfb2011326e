"""``python -m sim calibrate`` (issue 18): lognormal fits of Prometheus histograms, the
overlay it writes and ``--calibration FILE``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from sim_helpers import textbook, write

from sim.calibrate import (
    WORK_FAMILY,
    Histogram,
    calibration_overrides,
    engine_overlay,
    fit_lognormal,
    histogram_quantile,
    informative_edges,
    overlay,
    read_histograms,
)
from sim.cli import main

#: sandbox/metrics.py's buckets
EDGES = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0)


def _histogram(samples: np.ndarray, scope: str = "mock.crm", connector: str = "crm",
               ) -> Histogram:
    cumulative = tuple(float(np.sum(samples <= e)) for e in EDGES)
    return Histogram(scope, connector, EDGES, cumulative, float(len(samples)))


def _exposition(h: Histogram, instance: str) -> str:
    labels = f'connector="{h.connector}",instance="{instance}",scope="{h.scope}"'
    lines = ["# HELP omnisql_request_latency_seconds Request latency",
             "# TYPE omnisql_request_latency_seconds histogram"]
    for edge, cum in zip(h.edges, h.cumulative):
        lines.append(f'omnisql_request_latency_seconds_bucket{{{labels},le="{edge}"}} {cum}')
    lines.append(f'omnisql_request_latency_seconds_bucket{{{labels},le="+Inf"}} {h.count}')
    lines.append(f"omnisql_request_latency_seconds_count{{{labels}}} {h.count}")
    lines.append(f"omnisql_request_latency_seconds_sum{{{labels}}} 1.0")
    return "\n".join(lines) + "\n"


def test_the_fit_recovers_a_known_lognormal_from_its_buckets():
    rng = np.random.default_rng(7)
    median, p99 = 0.15, 0.9  # the scenario's provider latency at full size
    sigma = math.log(p99 / median) / 2.3263478740408408
    h = _histogram(rng.lognormal(math.log(median), sigma, 20_000))
    assert informative_edges(h) >= 4
    fit = fit_lognormal(h)
    assert fit.median == pytest.approx(median, rel=0.05)
    assert fit.p99 == pytest.approx(p99, rel=0.15)
    assert fit.ks < 0.02
    # a wrong distribution fits worse: a uniform 0-300 ms spread
    worse = fit_lognormal(_histogram(rng.uniform(0.0, 0.3, 20_000)))
    assert worse.ks > 3 * fit.ks


def test_histogram_quantile_is_linear_within_its_bucket():
    h = Histogram("s", "", (1.0, 2.0), (50.0, 100.0), 100.0)
    assert histogram_quantile(h, 0.5) == 1.0
    assert histogram_quantile(h, 0.75) == 1.5
    assert histogram_quantile(Histogram("s", "", (1.0,), (50.0,), 100.0), 0.9) is None


def test_overlay_writes_only_what_the_buckets_resolve(tmp_path: Path):
    rng = np.random.default_rng(1)
    resolved = _histogram(rng.lognormal(math.log(0.15), 0.7, 5_000))
    one_bucket = _histogram(rng.uniform(0.006, 0.0095, 5_000), "mock.tickets", "tickets")
    engine = _histogram(rng.uniform(0.001, 0.2, 5_000), "az-a.engine", "")
    text = "".join(_exposition(h, f"i{n}") for n, h in enumerate([resolved, one_bucket, engine]))
    histograms = read_histograms(text)
    assert [h.name for h in histograms] == ["az-a.engine", "mock.crm/crm", "mock.tickets/tickets"]
    result = overlay(histograms, "sb")
    assert list(result["overrides"]) == ["topology.providers.crm.latency"]
    fitted = result["fit"][0]
    assert fitted["quantiles"]["p50"]["fitted"] == pytest.approx(0.15, rel=0.1)
    reasons = {row["series"]: row["reason"] for row in result["not_fitted"]}
    assert "cannot resolve" in reasons["mock.tickets/tickets"]
    assert "fitted from its work histogram" in reasons["az-a.engine"]
    # the overlay, applied with --calibration, reaches the scenario's provider
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(result))
    data = textbook(run={"duration": "5m", "warmup": "30s", "window": "30s"})
    scenario_path = write(tmp_path, data)
    out = tmp_path / "run"
    main(["run", str(scenario_path), "--calibration", str(path), "--no-plots",
          "--out", str(out), "-j", "1"])
    effective = yaml.safe_load((out / "scenario.yaml").read_text())
    assert effective["topology"]["providers"]["crm"]["latency"]["dist"] == "lognormal"
    assert calibration_overrides(path)[0].startswith("topology.providers.crm.latency={")


#: sandbox/metrics.py's ENGINE_WORK buckets
WORK_EDGES = (0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
              0.05, 0.1, 0.25, 1.0)


def _work_exposition(samples: np.ndarray, zone: str, part: str) -> str:
    labels = f'instance="engine-{zone}",part="{part}",scope="{zone}.engine"'
    name = WORK_FAMILY
    lines = [f"# HELP {name} Engine slot time per query, by part", f"# TYPE {name} histogram"]
    for edge in WORK_EDGES:
        lines.append(f'{name}_bucket{{{labels},le="{edge}"}} {np.sum(samples <= edge)}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {len(samples)}')
    lines.append(f"{name}_count{{{labels}}} {len(samples)}")
    lines.append(f"{name}_sum{{{labels}}} {samples.sum()}")
    return "\n".join(lines) + "\n"


def test_the_engines_work_is_pooled_over_the_zones_into_service_time_and_cache_latency():
    """Three zones' engines, each timing its slot in two parts: one fit per part, written
    to the parameter the simulator's engine worker is held for; each zone reported."""
    rng = np.random.default_rng(3)
    text = "".join(
        _work_exposition(rng.lognormal(math.log(median), 0.6, 3_000), zone, part)
        for zone in ("az-a", "az-b", "az-c")
        for part, median in (("service", 0.00008), ("cache_lookup", 0.0004)))
    work = read_histograms(text, WORK_FAMILY, "part")
    assert len(work) == 6 and {h.connector for h in work} == {"service", "cache_lookup"}
    overrides, fits, not_fitted = engine_overlay(work)
    assert list(overrides) == ["topology.engine.service_time", "topology.cache.latency"]
    by_target = {f["target"]: f for f in fits}
    assert by_target["topology.engine.service_time"]["observations"] == 9_000  # pooled
    assert by_target["topology.engine.service_time"]["median"] == pytest.approx(8e-5, rel=0.1)
    assert by_target["topology.cache.latency"]["median"] == pytest.approx(4e-4, rel=0.1)
    assert overrides["topology.cache.latency"]["dist"] == "lognormal"
    assert sorted(r["series"] for r in not_fitted) == sorted(
        f"{z}.engine/{p}" for z in ("az-a", "az-b", "az-c") for p in ("service", "cache_lookup"))
    # the values are the schema's: the calibrated scenario loads
    base = textbook()
    for path, value in overrides.items():
        section = base
        *parents, leaf = path.split(".")
        for key in parents:
            section = section.setdefault(key, {})
        section[leaf] = value
    from labcore.scenario import Scenario
    loaded = Scenario.model_validate(base)
    assert loaded.topology.cache.latency.median == pytest.approx(  # type: ignore[union-attr]
        by_target["topology.cache.latency"]["median"], rel=1e-3)


def test_an_idle_engine_is_reported_not_fitted():
    text = _work_exposition(np.full(10, 0.0001), "az-a", "service")
    overrides, fits, not_fitted = engine_overlay(read_histograms(text, WORK_FAMILY, "part"))
    assert overrides == {} and fits == []
    assert "fewer than 50" in not_fitted[0]["reason"]


def test_bad_calibration_input_exits_2(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit: []\n")
    scenario = write(tmp_path, textbook())
    assert main(["run", str(scenario), "--calibration", str(bad), "--no-plots",
                 "--out", str(tmp_path / "o")]) == 2
    assert "needs an 'overrides' mapping" in capsys.readouterr().err
    bad.write_text("overrides: {}\nfitted_on: [1]\n")
    assert main(["run", str(scenario), "--calibration", str(bad), "--no-plots",
                 "--out", str(tmp_path / "o")]) == 2
    assert "'fitted_on' must map" in capsys.readouterr().err
    assert main(["calibrate", "--from-sandbox", str(tmp_path / "nowhere")]) == 2
    assert "no running stand-in" in capsys.readouterr().err


def test_a_provider_latency_fitted_on_another_configuration_is_not_applied(tmp_path: Path,
                                                                           capsys):
    """A fit of the mock's latency holds for the latency the mock was configured with:
    cache_stampede_short_ttl's 3 s tickets API is not replaced by a baseline fit (200 ms)."""
    from sim import load_scenario
    from sim.calibrate import calibration_mismatches, fitted_on

    scenarios = Path(__file__).resolve().parents[1] / "scenarios"
    baseline = load_scenario(scenarios / "baseline.yaml", "standin")
    # the stand-in's GET /admin/config after the baseline was applied (sandbox.standin)
    config = {"providers": {name: {"latency": spec.latency.model_dump(by_alias=True)}
                            for name, spec in baseline.topology.providers.items()}}
    fit = {"dist": "lognormal", "median": "205ms", "p99": "1.4s"}
    overrides = {"topology.providers.tickets.latency": fit,
                 "topology.metadata.replication_lag": fit}
    recorded = fitted_on(config, overrides)
    assert list(recorded) == ["topology.providers.tickets.latency"]  # providers only
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump({"overrides": overrides, "fitted_on": recorded}))
    assert calibration_mismatches(path, baseline) == {}
    short_ttl = scenarios / "cache_stampede_short_ttl.yaml"
    mismatches = calibration_mismatches(path, load_scenario(short_ttl, "standin"))
    assert list(mismatches) == ["topology.providers.tickets.latency"]
    out = tmp_path / "run"
    assert main(["run", str(short_ttl), "--profile", "standin", "--calibration", str(path),
                 "--set", "run.duration=2m", "--set", "run.warmup=30s", "--no-plots",
                 "--out", str(out), "-j", "1", "-R", "1"]) in (0, 1)
    printed = capsys.readouterr()
    assert "calibration: topology.providers.tickets.latency not applied" in (
        printed.out + printed.err)
    effective = yaml.safe_load((out / "scenario.yaml").read_text())["topology"]
    assert effective["providers"]["tickets"]["latency"]["median"] in (3.0, "3s")
    assert effective["metadata"]["replication_lag"]["median"] in ("205ms", 0.205)
