"""Distributions: value objects with a mean, argument checks and seeded samplers."""

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from labcore.distributions import Distribution

ADAPTER = TypeAdapter(Distribution)


def _mean(dist, n=200_000):
    sample = dist.sampler(np.random.default_rng(7))
    return sum(sample() for _ in range(n)) / n


@pytest.mark.parametrize("spec", [
    "20ms",
    {"dist": "exponential", "mean": "50ms"},
    {"dist": "lognormal", "median": "100ms", "p99": "1s"},
    {"dist": "uniform", "low": "1m", "high": "3m"},
])
def test_sample_mean_matches_theoretical_mean(spec):
    dist = ADAPTER.validate_python(spec)
    assert _mean(dist) == pytest.approx(dist.mean, rel=0.02)
    assert type(dist).__name__ in repr(dist)


def test_lognormal_is_parameterised_by_median_and_p99():
    dist = ADAPTER.validate_python({"dist": "lognormal", "median": "100ms", "p99": "1s"})
    sample = dist.sampler(np.random.default_rng(3))
    values = np.array([sample() for _ in range(200_000)])
    assert np.median(values) == pytest.approx(0.1, rel=0.02)
    assert np.quantile(values, 0.99) == pytest.approx(1.0, rel=0.05)


def test_empirical_resamples_a_csv_relative_to_the_scenario(tmp_path):
    (tmp_path / "lat.csv").write_text("seconds\n0.1\n0.2\n0.6\n")
    dist = ADAPTER.validate_python({"dist": "empirical", "file": "lat.csv"},
                                   context={"base_dir": tmp_path})
    assert dist.mean == pytest.approx(0.3)
    sample = dist.sampler(np.random.default_rng(1))
    assert {sample() for _ in range(1000)} == {0.1, 0.2, 0.6}
    with pytest.raises(ValidationError, match="not found"):
        ADAPTER.validate_python({"dist": "empirical", "file": "nope.csv"},
                                context={"base_dir": tmp_path})


@pytest.mark.parametrize("spec", [
    {"dist": "lognormal", "median": "100ms", "p99": "10ms"},
    {"dist": "exponential", "mean": "0s"},
    {"dist": "uniform", "low": "2s", "high": "1s"},
    {"dist": "gamma", "mean": "1s"},
    {"dist": "exponential", "mean": "1s", "sd": "1s"},
])
def test_bad_arguments_are_refused(spec):
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(spec)


def test_same_stream_same_draws():
    dist = ADAPTER.validate_python({"dist": "exponential", "mean": "1s"})
    a, b = dist.sampler(np.random.default_rng(5)), dist.sampler(np.random.default_rng(5))
    assert [a() for _ in range(5000)] == [b() for _ in range(5000)]
