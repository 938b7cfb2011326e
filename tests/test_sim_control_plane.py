"""The control-plane tier (issue 14): an exact timeline (level 1), the opt-in rule, and
its mean wait against Erlang C over replications (level 3)."""

import pytest
from scipy import stats
from sim_helpers import SCENARIOS, load, textbook

from labcore.metrics import Estimate, compute_metrics, window_table
from labcore.scenario_file import load_scenario
from sim import simulate
from sim.validation import FAMILY_ALPHA
from sim.validation.queueing import mmc


def _queue(tmp_path, *overrides):
    """A pure control-plane queue: instant engine, one control-plane worker holding each
    fetch 1 s (policy) + 0.5 s (token), deterministic arrivals at 1, 2, 3... s: job k
    waits 0.5·(k − 1) s there."""
    data = textbook(
        run={"duration": "10s", "window": "10s", "warmup": "0s"},
        topology__engine={"workers_per_zone": 4, "service_time": "0s"},
        topology__control_plane={"workers_per_zone": 1, "policy_time": "1s",
                                 "token_lookup_time": "500ms"},
        workload={"tenants": {"acme": {"rate": "1/s", "arrivals": "deterministic",
                                       "mix": {"crm.accounts": "100%"}}}},
    )
    return simulate(load(tmp_path, data, *overrides), seed=1)


def test_exact_timeline_of_a_deterministic_control_plane(tmp_path):
    result = _queue(tmp_path)
    m = compute_metrics(result)
    # Six fetches start before 10 s (at 1, 2.5, 4, 5.5, 7, 8.5), waits 0, .5, 1 ... 2.5 s.
    assert m["control_plane.throughput"] * 10 == pytest.approx(6)
    assert m["control_plane.queue_wait_mean"] == pytest.approx(7.5 / 6)
    assert m["control_plane.wait_probability"] == pytest.approx(5 / 6)
    assert m["control_plane.utilization"] == pytest.approx(0.9)  # busy from 1 s to 10 s
    # Five answered: the k-th at 1 + 1.5·k s, so its latency is 1.5 + 0.5·(k − 1) s.
    assert m["requests"] == 5
    assert m["latency_mean"] == pytest.approx((1.5 + 2.0 + 2.5 + 3.0 + 3.5) / 5)
    # The engine, now the first tier, never waits.
    assert m["engine.queue_wait_mean"] == 0.0


def test_a_full_control_plane_queue_refuses_work(tmp_path):
    """queue_limit 0: a fetch that finds the worker busy ends ``overload``."""
    m = compute_metrics(_queue(tmp_path, "topology.control_plane.queue_limit=0"))
    # Starts at 1, 3, 5, 7, 9; refused at 2, 4, 6, 8.
    assert m["control_plane.throughput"] * 10 == pytest.approx(5)
    assert m["control_plane.rejected"] == 4
    assert m["errors.overload"] == pytest.approx(4 / m["requests"])


def test_the_tier_is_opt_in(tmp_path):
    data = textbook(run={"duration": "10m", "warmup": "1m", "window": "1m"})
    plain = simulate(load(tmp_path, data), seed=3)
    assert plain.arrays["tier_names"] == ["gateway", "engine", "connector"]
    assert not [k for k in compute_metrics(plain) if k.startswith("control_plane.")]
    # Turned on, the other components draw exactly what they drew without it: its two
    # streams are its own. Instant policy and token: the run's requests are identical.
    on = simulate(load(tmp_path, data, "topology.control_plane={policy_time: 0s, "
                                        "token_lookup_time: 0s}"), seed=3)
    assert on.arrays["tier_names"] == ["gateway", "engine", "connector", "control_plane"]
    assert (on.arrays["hist"] == plain.arrays["hist"]).all()


#: M/M/8 at ρ = 0.8 in the control plane (exponential policy time, instant token lookup),
#: behind an instant engine: Erlang C's mean wait is the oracle. Agreement as
#: ``validate-model`` decides it: one-sample t tests at FAMILY_ALPHA / 3 (Bonferroni).
_C, _LAM, _MU, _REPS = 8, 6.4, 1.0, 20


@pytest.mark.slow
def test_control_plane_mean_wait_agrees_with_erlang_c(tmp_path):
    data = textbook(
        run={"duration": "2h", "warmup": "10m", "window": "1m"},
        topology__engine={"workers_per_zone": 64, "service_time": "0s"},
        topology__control_plane={"workers_per_zone": _C,
                                 "policy_time": {"dist": "exponential", "mean": "1s"},
                                 "token_lookup_time": "0s"},
    )
    scenario = load(tmp_path, data)
    runs = [compute_metrics(simulate(scenario, seed=seed)) for seed in range(1, _REPS + 1)]
    theory = mmc(_C, _LAM, _MU)
    wq = Estimate([m["control_plane.queue_wait_mean"] for m in runs])
    p_wait = Estimate([m["control_plane.wait_probability"] for m in runs])
    util = Estimate([m["control_plane.utilization"] for m in runs])
    print(f"Wq {wq!r} vs Erlang C {theory.wq:.4f}; P(wait) {p_wait!r} vs {theory.p_wait:.4f}; "
          f"utilisation {util!r} vs {theory.utilization:.4f}")
    for name, expected in (("queue_wait_mean", theory.wq), ("wait_probability", theory.p_wait),
                           ("utilization", theory.utilization)):
        values = [m[f"control_plane.{name}"] for m in runs]
        assert stats.ttest_1samp(values, expected).pvalue >= FAMILY_ALPHA / 3, name
    assert wq.ci_high - wq.ci_low < 0.2 * theory.wq  # the interval is tight enough to mean it



def _before_and_during(name, duration):
    """The control plane's utilisation per measured window before and after the fault
    (full scale: the stand-in profiles' 2% traffic cannot load a pool of 1 per zone)."""
    scenario = load_scenario(SCENARIOS / f"{name}.yaml", overrides=[f"run.duration={duration}"])
    table = window_table(simulate(scenario, seed=1))
    util, start, fault = table["control_plane.utilization"], table["time"], scenario.faults[0].at
    return util[table["measured"].astype(bool) & (start < fault)], util[start >= fault]


@pytest.mark.slow
def test_the_stampede_saturates_the_control_plane():
    """SOP-102's variant: sized with headroom, saturated by the herd."""
    before, during = _before_and_during("cache_stampede_control_plane", "8m")
    assert before.max() < 0.5
    assert during.max() > 0.95


@pytest.mark.slow
def test_bulk_401s_load_the_token_lookups():
    """SOP-103's variant: every crm query misses and looks its revoked token up."""
    before, during = _before_and_during("auth_failure_control_plane", "7m")
    assert before.mean() < 0.1
    assert during.mean() > 0.4
