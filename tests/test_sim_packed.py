"""The hot path's packed arrays (sim.kernel.packed): the recorder's windows built on
them (every count and sum lands in its own tenant, bin and outcome) and packed draws
(the samplers' own values)."""

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from labcore.distributions import BLOCK, Distribution
from labcore.facts import BIN_GROWTH, BIN_MIN, N_BINS, OUTCOMES
from sim.kernel import Environment, Recorder
from sim.kernel.events import NATIVE
from sim.kernel.packed import Draws, floats, ints


def test_packed_arrays_hold_their_fill_and_read_as_numpy() -> None:
    table = floats(5, -math.inf)
    counts = ints(4)
    assert len(table) == 5 and len(counts) == 4
    table[3] = 2.5
    counts[1] = counts[1] + 300  # past the small ints a list would share
    assert np.array_equal(np.asarray(table), [-math.inf] * 3 + [2.5, -math.inf])
    assert np.asarray(counts).dtype == np.int64
    assert np.asarray(counts).tolist() == [0, 300, 0, 0]
    # Compiled: librt's vec, whose buffer numpy reads in place; plain Python: a list.
    assert (type(table).__name__ == "vec[float]") == NATIVE
    assert (type(counts).__name__ == "vec[i64]") == NATIVE
    assert len(floats(0, 0.0)) == 0 and len(ints(0)) == 0


def _bin(latency: float) -> int:
    """The recorder's bin, computed here from labcore.facts' definition."""
    if latency <= BIN_MIN:
        return 0
    return min(int(math.log(latency / BIN_MIN) / math.log(BIN_GROWTH)), N_BINS - 1)


def test_each_tenant_bin_and_outcome_is_counted_in_its_own_cell() -> None:
    env = Environment()
    tenants = ["acme", "globex", "initech"]
    recorder = Recorder(env, 10.0, tenants, outcomes=OUTCOMES, windows=2)
    expected_hist = np.zeros((len(tenants), N_BINS), dtype=np.int64)
    expected_outcomes = np.zeros((len(tenants), len(OUTCOMES)), dtype=np.int64)
    expected_sums = [0.0] * len(tenants)
    fail_hist = np.zeros(N_BINS, dtype=np.int64)
    # 300 successes of one tenant at one latency (a count past 256), then a mix.
    requests = [(1, 0.05, 0)] * 300 + [
        (t, 0.001 * (1 + 7 * t + i), (i % len(OUTCOMES)) if t != 0 else 0)
        for i in range(40) for t in range(len(tenants))]
    env.run(until=1.0)
    for tenant, latency, outcome in requests:
        recorder.request(tenant, latency, outcome)
        expected_outcomes[tenant, outcome] += 1
        if outcome:
            fail_hist[_bin(latency)] += 1
        else:
            expected_hist[tenant, _bin(latency)] += 1
            expected_sums[tenant] += latency
    env.run(until=5.0)
    recorder.close_window()
    arrays = recorder.arrays()
    assert arrays["hist"].shape == (1, len(tenants), N_BINS)
    assert np.array_equal(np.asarray(arrays["hist"])[0], expected_hist)
    assert int(expected_hist[1, _bin(0.05)]) >= 300
    assert np.array_equal(arrays["outcomes"][0], expected_outcomes)
    assert arrays["latency_sum"][0].tolist() == expected_sums  # the same additions, in order
    assert np.array_equal(np.asarray(arrays["fail_hist"])[0], fail_hist)
    # The next window starts empty.
    env.run(until=12.0)
    recorder.request(2, 0.2, 0)
    recorder.close_window()
    second = np.asarray(recorder.arrays()["hist"])[-1]
    assert int(second.sum()) == 1 and int(second[2, _bin(0.2)]) == 1


_DISTRIBUTIONS = [
    {"dist": "exponential", "mean": "50ms"},
    {"dist": "lognormal", "median": "150ms", "p99": "1.2s"},
    {"dist": "constant", "value": "1ms"},
]


@pytest.mark.parametrize("spec", _DISTRIBUTIONS, ids=lambda s: s["dist"])
def test_draws_are_the_samplers_draws_across_blocks(spec: dict[str, str]) -> None:
    """Packed draws (compiled hot paths) give the sampler's values, past a block's end,
    and draw from the stream as the sampler does (a constant not at all)."""
    dist = TypeAdapter(Distribution).validate_python(spec)
    ours, theirs = np.random.default_rng(11), np.random.default_rng(11)
    draws, sampler = Draws(dist, ours), dist.sampler(theirs)
    values = [draws.draw() for _ in range(BLOCK + 5)]
    assert values == [sampler() for _ in range(BLOCK + 5)]
    assert len(set(values)) == (1 if spec["dist"] == "constant" else BLOCK + 5)
    assert ours.random() == theirs.random()  # both streams left at the same place
