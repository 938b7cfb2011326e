"""Sparse window histograms (issue 15): exact against a dense reference, the same metrics
from either form, and through ``save_facts``/``load_facts`` (old dense files included)."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import SCENARIOS

import labcore.window_hist as window_hist
from labcore.facts import N_BINS, RunFacts, load_facts, save_facts
from labcore.metrics import compute_metrics, window_table
from labcore.window_hist import HistBuilder, WindowHist
from sim import read_scenario, simulate


def _dense(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Mostly empty bins, a few counts beyond uint16 and uint32."""
    dense = np.where(rng.random(shape) < 0.02, rng.integers(1, 50, shape), 0).astype(np.int64)
    flat = dense.reshape(-1)
    flat[rng.integers(0, flat.size, 3)] = [70_000, 5_000_000_000, 1]
    return dense


def _sparse(dense: np.ndarray) -> WindowHist:
    builder = HistBuilder(dense.shape[1] if dense.ndim == 3 else None, dense.shape[-1])
    for window in dense:
        builder.append(window.tolist())  # as the recorder hands it: Python lists
    return builder.build()


@pytest.mark.parametrize("shape", [(23, 5, N_BINS), (23, N_BINS), (0, 3, N_BINS), (4, 1, 7)])
def test_the_sparse_form_is_the_dense_array(shape: tuple[int, ...],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(window_hist, "BLOCK_ENTRIES", 50)  # many blocks
    monkeypatch.setattr(window_hist, "BLOCK_WINDOWS", 4)
    rng = np.random.default_rng(7)
    dense = _dense(rng, shape) if shape[0] else np.zeros(shape, dtype=np.int64)
    hist = _sparse(dense)
    assert hist.shape == dense.shape and np.asarray(hist).dtype == np.int64
    assert np.array_equal(np.asarray(hist), dense)
    assert int(hist.sum()) == int(dense.sum())
    blocks = list(hist.blocks())
    assert [w for b in blocks for w in b.tolist()] == list(range(shape[0]))
    assert all(len(b) <= 4 for b in blocks)
    if shape[0] > 8:
        assert len(blocks) > 1


def test_every_sum_the_metrics_take_is_the_dense_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(window_hist, "BLOCK_ENTRIES", 64)
    rng = np.random.default_rng(11)
    dense = _dense(rng, (40, 6, N_BINS))
    hist = _sparse(dense)
    windows = np.sort(rng.choice(40, 17, replace=False))
    mask = rng.random(40) < 0.5
    tenants = np.array([0, 3, 5])
    assert np.array_equal(hist.window_sums(windows), dense[windows].sum(axis=1))
    assert np.array_equal(hist.window_sums(windows, tenants), dense[windows][:, tenants].sum(1))
    assert np.array_equal(hist.tenant(4, windows), dense[windows, 4])
    assert np.array_equal(hist.total(mask), dense[mask].sum(axis=(0, 1)))
    assert np.array_equal(hist.total(mask, 2), dense[mask, 2].sum(axis=0))
    assert np.array_equal(hist[mask, 1], dense[mask, 1])  # numpy-style reads densify
    assert np.array_equal(hist[3], dense[3]) and bool((hist == dense).all())
    assert np.array_equal(np.asarray(WindowHist.of(dense)), dense)


def test_counts_too_large_for_their_type_widen_it() -> None:
    builder = HistBuilder(2, 4)
    builder.append([[1, 0, 0, 2], [0, 0, 0, 0]])
    assert builder.counts.dtype == np.uint16
    builder.append([[0, 2**40, 0, 0], [0, 0, 65_536, 0]])
    assert builder.counts.dtype == np.int64
    assert np.asarray(builder.build()).tolist() == [[[1, 0, 0, 2], [0, 0, 0, 0]],
                                                    [[0, 2**40, 0, 0], [0, 0, 65_536, 0]]]
    with pytest.raises(ValueError, match="negative"):
        builder.append([[0, -1, 0, 0], [0, 0, 0, 0]])


@pytest.fixture(scope="module")
def flood() -> RunFacts:
    """A noisy tenant's flood with a fault: per-tenant, tenants_except and incident metrics."""
    scenario = read_scenario(SCENARIOS / "rate_limit_flood.yaml", "standin").scenario
    run = simulate(scenario, 2)
    return RunFacts(scenario, run.seed, run.arrays, run.marks, run.tenants, run.rpo_losses,
                    run.facts, run.logs)


def _same(want: dict, got: dict) -> None:
    assert want.keys() == got.keys()
    for key, value in want.items():
        nan = isinstance(value, float) and math.isnan(value)
        assert got[key] == value or (nan and math.isnan(got[key])), (key, value, got[key])


def _densified(facts: RunFacts) -> RunFacts:
    arrays = {**facts.arrays, "hist": np.asarray(facts.arrays["hist"]),
              "fail_hist": np.asarray(facts.arrays["fail_hist"])}
    return dataclasses.replace(facts, arrays=arrays)


def test_sparse_and_dense_windows_give_the_same_metrics(flood: RunFacts) -> None:
    assert isinstance(flood.arrays["hist"], WindowHist)
    dense = _densified(flood)
    for scope in ("run", "before_fault", "after_recovery", "outside_recovery"):
        _same(compute_metrics(flood, scope), compute_metrics(dense, scope))  # type: ignore[arg-type]
    assert window_table(flood).equals(window_table(dense))


def test_tenants_except_is_a_run_of_the_other_tenants_alone(flood: RunFacts) -> None:
    """``tenants_except.<t>.*`` (summed from all tenants minus ``t``, a block of windows
    at a time) equals the whole-run metrics of facts holding only the other tenants'
    counts, summed densely. Tenant 0 fails every request in windows 46 to 55, so the
    complements recover at different times (380 s after the surge at 2 min without
    tenant 0, 440 s with it): two sets of windows after recovery. Every success in
    windows 50 to 55, those only one of them has, took 0.9 s (inside the SLO), so their
    P95s differ widely as well."""
    outcomes = flood.arrays["outcomes"].copy()
    outcomes[46:56, 0, 1] += outcomes[46:56, 0, 0]
    outcomes[46:56, 0, 0] = 0
    dense = np.asarray(flood.arrays["hist"]).copy()
    dense[50:56, :, 460] = dense[50:56].sum(axis=2)  # bin 460: 0.9 s
    dense[50:56, :, :460] = 0
    facts = dataclasses.replace(flood, arrays={**flood.arrays, "outcomes": outcomes,
                                               "hist": WindowHist.of(dense)})
    for scope in ("run", "after_recovery"):
        got = compute_metrics(facts, scope)
        rtos = set()
        for t, name in enumerate(flood.tenants):
            rest = [i for i in range(len(flood.tenants)) if i != t]
            alone = {**flood.arrays, "hist": dense[:, rest].sum(axis=1, keepdims=True),
                     "outcomes": outcomes[:, rest].sum(axis=1, keepdims=True)}
            want = compute_metrics(dataclasses.replace(flood, arrays=alone, tenants=("rest",)),
                                   scope)
            for key in ("requests", "error_rate", "latency_p95", "rto_seconds"):
                assert got[f"tenants_except.{name}.{key}"] == want[key], (scope, name, key)
            rtos.add(want["rto_seconds"])
        assert rtos == {380.0, 440.0}
    p95 = {got[f"tenants_except.{name}.latency_p95"] for name in flood.tenants}
    assert len(p95) > 1 and max(p95) == pytest.approx(0.9, rel=0.02)


def test_facts_round_trip_sparse_and_old_dense_files(flood: RunFacts, tmp_path: Path) -> None:
    save_facts(tmp_path / "sparse.npz", flood)
    back = load_facts(tmp_path / "sparse.npz", flood.scenario)
    assert isinstance(back.arrays["hist"], WindowHist)
    for name in ("hist", "fail_hist"):
        assert np.array_equal(np.asarray(back.arrays[name]), np.asarray(flood.arrays[name]))
    save_facts(tmp_path / "dense.npz", _densified(flood))  # as the Locust client writes
    old = load_facts(tmp_path / "dense.npz", flood.scenario)
    assert isinstance(old.arrays["hist"], np.ndarray)
    want = compute_metrics(flood)
    _same(want, compute_metrics(back))
    _same(want, compute_metrics(old))


def test_inconsistent_sparse_parts_are_refused(flood: RunFacts, tmp_path: Path) -> None:
    save_facts(tmp_path / "facts.npz", flood)
    with np.load(tmp_path / "facts.npz") as data:
        parts = {k: data[k] for k in data.files}
    parts["s.hist.bins"] = parts["s.hist.bins"][:-1]
    np.savez(tmp_path / "bad.npz", **parts)
    with pytest.raises(ValueError, match="bad.npz: sparse histogram 'hist'"):
        load_facts(tmp_path / "bad.npz", flood.scenario)
