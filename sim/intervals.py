"""Confidence intervals that stay inside the metric's domain.

Every metric of the lab is a count, a duration, a rate or a fraction: none is negative,
and fractions (error rates, ratios, utilisation) do not exceed 1. The Student-t interval
of :class:`sim.metrics.Estimate` is symmetric, so for a skewed metric near its bound (an
RPO that is 0 in three replications of four and 5 s in the fourth) it reaches below 0:
an impossible value, read as "the RPO may be negative".

Rule: where the t interval lies inside the domain it is kept (its coverage is the one the
docs state). Where it leaves the domain, the normal approximation has visibly failed, and
the interval is replaced by a **percentile bootstrap** interval (2,000 resamples of the
replications, 2.5th and 97.5th percentiles), which lies within the range of the observed
values and so within the domain. The resampling is seeded from the metric's name
(``zlib.crc32``), so the same replications give the same bytes. ``summary.json`` marks such
a metric with ``"ci_method": "bootstrap"``.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from .humanize import is_fraction

__all__ = ["BOOTSTRAP_RESAMPLES", "bound_estimates", "bootstrap_interval", "domain"]

BOOTSTRAP_RESAMPLES = 2_000


def domain(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take: [0, 1] for fractions, [0, inf) otherwise."""
    return (0.0, 1.0) if is_fraction(metric) else (0.0, math.inf)


def bootstrap_interval(values: list[float], name: str) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of ``values``."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    data = np.asarray(values, dtype=float)
    picks = rng.integers(0, len(data), size=(BOOTSTRAP_RESAMPLES, len(data)))
    means = data[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def bound_estimates(estimates: dict[str, dict[str, Any]],
                    per_run: list[dict[str, float | None]]) -> None:
    """Replace, in place, every interval that leaves its metric's domain (see above)."""
    for name, est in estimates.items():
        low, high = est.get("ci_low"), est.get("ci_high")
        if low is None or high is None:
            continue
        floor, ceiling = domain(name)
        if low >= floor and high <= ceiling:
            continue
        values = [float(v) for run in per_run if (v := run.get(name)) is not None]
        est["ci_low"], est["ci_high"] = bootstrap_interval(values, name)
        est["ci_method"] = "bootstrap"
