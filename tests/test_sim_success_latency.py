"""The SLO's latency is over successful requests (issue 13); failures count in the error rate.

A fail-fast error answered in 0.1 ms used to pull every percentile down, so that an outage
looked fast. Now ``hist`` holds successes, ``fail_hist`` the failures (per window, every
tenant), ``latency_all_*`` keeps the old all-outcome view, and a window with no success has
no P95 and never meets the SLO.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import SCENARIOS

from labcore.checks import passes
from labcore.facts import RunFacts, bin_index, empty_arrays, load_facts, save_facts
from labcore.metrics import compute_metrics, percentile, window_table
from labcore.scenario_file import read_scenario
from sim import simulate
from sim.why import explain, why_lines

_ALL_ZONES_DOWN = ("faults=[" + ", ".join(
    f"{{kind: az_loss, zone: {z}, at: 2m, duration: 1m}}" for z in ("az-a", "az-b", "az-c"))
    + "]")


@pytest.fixture(scope="module")
def outage():
    """The baseline (stand-in profile) with every zone lost from 2m to 3m: a total outage
    whose errors (no healthy zone) fail fast."""
    scenario = read_scenario(SCENARIOS / "baseline.yaml", "standin", overrides=(
        "run.duration=5m", "run.warmup=1m", _ALL_ZONES_DOWN)).scenario
    return simulate(scenario)


def test_a_total_outage_does_not_look_fast(outage) -> None:
    df = window_table(outage)
    down = (df["time"] >= 120.0) & (df["time"] < 180.0)
    assert down.sum() == 6
    assert (df.loc[down, "error_rate"] == 1.0).all()  # the error rate carries the failure
    assert df.loc[down, "latency_p95"].isna().all()  # no success, no success latency
    assert not df.loc[down, "meets_slo"].any()
    # the failures were mostly fail-fast: over every outcome the P50 of those windows is
    # ~0.1 ms, which is what the SLO latency showed before (the probe)
    fail = outage.arrays["fail_hist"][down.to_numpy()].sum(axis=0)
    assert percentile(fail, 0.50) < 1e-3
    healthy = df.loc[df["measured"] & ~down, "latency_p95"]
    assert healthy.notna().all() and (healthy > 0.1).all()


def test_run_metrics_keep_success_and_all_outcome_latency_apart(outage) -> None:
    m = compute_metrics(outage)
    assert m["incident.error_rate"] == 1.0
    assert math.isnan(m["incident.latency_p95"])
    assert not passes("<=", m["incident.latency_p95"], 1.5)  # it cannot pass on latency
    assert m["latency_p50"] > 0.02  # successes: the healthy minutes
    assert m["latency_all_p50"] < m["latency_p50"]  # a quarter of fail-fast errors pull it down
    ok, total = outage.arrays["outcomes"][:, :, 0].sum(), outage.arrays["outcomes"].sum()
    assert outage.arrays["hist"].sum() == ok
    assert outage.arrays["fail_hist"].sum() == total - ok


def test_why_says_no_request_succeeded(outage) -> None:
    lines = why_lines(explain(outage))
    assert any("P95 none (no request succeeded)" in line and "errors 100.0%" in line
               for line in lines), lines


def _facts(windows: list[tuple[int, int, float]], error_slo: str = "1%") -> RunFacts:
    """Window facts of the baseline's tenants: per window (successes, failures, latency)
    for the first tenant."""
    scenario = read_scenario(SCENARIOS / "baseline.yaml", overrides=(
        "run.warmup=0s", f"slo.error_rate={error_slo}")).scenario
    tenants = tuple(scenario.workload.tenants)
    a = empty_arrays(len(windows), len(tenants), [], scenario.run.window)
    for k, (ok, failed, latency) in enumerate(windows):
        a["hist"][k, 0, bin_index(latency)] = ok
        a["fail_hist"][k, bin_index(1e-4)] = failed
        a["outcomes"][k, 0, 0], a["outcomes"][k, 0, 4] = ok, failed
        a["latency_sum"][k, 0], a["fail_latency_sum"][k] = ok * latency, failed * 1e-4
    return RunFacts(scenario=scenario, seed=0, arrays=a, marks=(), tenants=tenants)


def test_a_window_without_success_never_meets_the_slo() -> None:
    # an error-rate SLO of 100% cannot breach: only the latency rule can fail the window
    facts = _facts([(100, 0, 0.05), (0, 100, 0.0), (100, 0, 0.05)], error_slo="100%")
    df = window_table(facts)
    assert df["meets_slo"].tolist() == [True, False, True]
    assert math.isnan(df.at[1, "latency_p95"])
    m = compute_metrics(facts)
    assert m["slo_window_compliance"] == pytest.approx(2 / 3)
    assert m["latency_mean"] == pytest.approx(0.05)
    assert m["latency_all_mean"] == pytest.approx((200 * 0.05 + 100 * 1e-4) / 300)


def test_no_success_at_all_leaves_the_latency_undefined() -> None:
    m = compute_metrics(_facts([(0, 50, 0.0), (0, 50, 0.0)]))
    assert m["error_rate"] == 1.0
    for key in ("latency_p50", "latency_p95", "latency_p99", "latency_mean"):
        assert math.isnan(m[key]), key
    assert m["latency_all_p95"] < 1e-3


def test_facts_written_before_the_split_are_refused(tmp_path: Path) -> None:
    facts = _facts([(10, 1, 0.05)])
    save_facts(tmp_path / "new.npz", facts)
    assert load_facts(tmp_path / "new.npz", facts.scenario).arrays["fail_hist"].sum() == 1
    old = {k: v for k, v in facts.arrays.items() if not k.startswith("fail_")}
    save_facts(tmp_path / "old.npz", RunFacts(facts.scenario, 0, old, (), facts.tenants))
    with pytest.raises(ValueError, match="fail_hist"):
        load_facts(tmp_path / "old.npz", facts.scenario)
    assert np.asarray(old["hist"]).sum() == 10


def test_the_plot_draws_success_latency(outage) -> None:
    import matplotlib.pyplot as plt

    from sim.report import overview_figure

    fig = overview_figure(outage)
    try:
        lat = fig.axes[0]
        assert lat.get_ylabel() == "latency of successes (s)"
        p95 = next(line for line in lat.get_lines() if line.get_label() == "p95")
        minutes = np.asarray(p95.get_xdata())
        down = np.asarray(p95.get_ydata())[(minutes > 2.0) & (minutes < 3.0)]
        assert len(down) == 6 and np.isnan(down).all()  # a gap, not a dive to 0.1 ms
    finally:
        plt.close(fig)
