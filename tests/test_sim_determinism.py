"""Same scenario and seed → identical results; faults do not shift the workload."""

import subprocess
import sys

import numpy as np
from sim_helpers import ROOT, SCENARIOS

from sim import compute_metrics, load_scenario, simulate

SHORT = ["run.duration=6m", "run.warmup=1m", "faults.0.at=3m"]


def test_same_seed_gives_byte_identical_summary(tmp_path):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "sim", "run", str(SCENARIOS / "az_loss.yaml"), "--seed", "5",
             "--replications", "2", "--jobs", "2", "--no-plots", "--out", str(out),
             *[f"--set={s}" for s in SHORT]],
            cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode in (0, 1), proc.stderr
        assert (out / "summary.json").exists(), proc.stdout + proc.stderr
        outs.append((out / "summary.json").read_bytes())
    assert outs[0] == outs[1]


def test_different_seeds_differ():
    scenario = load_scenario(SCENARIOS / "baseline.yaml", overrides=["run.duration=2m",
                                                                     "run.warmup=0"])
    a, b = compute_metrics(simulate(scenario, 1)), compute_metrics(simulate(scenario, 2))
    assert a["requests"] != b["requests"]


def test_common_random_numbers_across_fault_scenarios():
    """baseline and az_loss differ only in faults: identical windows before the fault."""
    base = simulate(load_scenario(SCENARIOS / "baseline.yaml", overrides=SHORT[:2]), 3)
    lost = simulate(load_scenario(SCENARIOS / "az_loss.yaml", overrides=SHORT), 3)
    before = base.arrays["start"] + 10 <= 180
    for key in ("hist", "outcomes", "latency_sum"):
        assert np.array_equal(base.arrays[key][before], lost.arrays[key][before]), key
    after = ~before
    assert not np.array_equal(base.arrays["outcomes"][after], lost.arrays["outcomes"][after])


def test_the_kernels_run_loop_is_simpys(monkeypatch):
    """The kernel's tight loop (``run(until=<time>)``) fires the same events as SimPy's
    own ``run``, which stops on an event and calls ``step`` once per event: a run with
    fault processes, health checks and retries gives the same windows either way."""
    import simpy

    from sim.kernel import Environment

    scenario = load_scenario(SCENARIOS / "az_loss.yaml",
                             overrides=["run.duration=3m", "faults.0.at=1m",
                                        "workload.scale=0.2"])
    fast = simulate(scenario)
    stepped: list[int] = []

    def simpys_run(env: Environment, until: float) -> None:
        stop = env.timeout(until - env.now)
        simpy.Environment.run(env, stop)
        stepped.append(1)

    monkeypatch.setattr(Environment, "run", simpys_run)
    plain = simulate(scenario)
    assert stepped == [1]
    assert fast.requests == plain.requests > 0
    assert fast.marks == plain.marks
    for name, value in fast.arrays.items():
        assert np.array_equal(np.asarray(value), np.asarray(plain.arrays[name])), name


def test_the_kernel_collects_cycles_once_per_interval_and_restores_the_collector():
    """During ``run`` the automatic cyclic collector is off and the young generations are
    collected once per ``collect_every`` simulated seconds; afterwards the collector is
    as it was (on, or off if the caller had switched it off)."""
    import gc

    from sim.kernel import Environment

    env = Environment(collect_every=1.0)
    seen = []

    def watch():
        while True:
            yield env.timeout(0.25)
            seen.append((gc.isenabled(), gc.get_stats()[1]["collections"]))

    env.process(watch())
    assert gc.isenabled()
    env.run(until=3.1)
    assert gc.isenabled()
    assert not any(enabled for enabled, _ in seen)
    counts = [n for _, n in seen]
    assert counts[-1] - counts[0] == 3  # at t = 1, 2, 3: ours only, none automatic
    gc.disable()
    try:
        env.run(until=4.1)
        assert not gc.isenabled()
    finally:
        gc.enable()
