"""Calibrating the metadata replication lag, the RPO of a primary loss, from the stand-in.

The simulator's RPO of a metadata primary loss is the replication lag drawn at the loss:
``topology.metadata.replication_lag`` for a zone's loss, ``failover.metadata.lag`` (with
``mode: async``) for a region's. On the stand-in both are the same streaming replica on
loopback, whose lag the control plane samples once a second while it runs
(``GET /admin/metadata/lag``, :mod:`sandbox.admin.lag`) and reads again just before it
kills the primary (what the chaos RPO probe reports). Fitting the samples into both
parameters makes ``--profile standin --calibration FILE`` predict the stand-in's RPO.

The samples are raw values (not histogram buckets), so the lognormal is fitted by maximum
likelihood in closed form (the mean and standard deviation of the logs) and the
Kolmogorov-Smirnov distance is the exact one of the sample. Samples taken while the
replica had caught up with nothing to replay (``idle``: nothing at risk) or while no
replica streamed are counted, not fitted: a lognormal has no zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["LAG_TARGETS", "MIN_SAMPLES", "SERIES", "fit_samples", "lag_overlay"]

#: The parameters the lag is written to; the second only applies to scenarios with a
#: ``failover:`` section (see :func:`sim.calibrate.calibration_overrides`).
LAG_TARGETS = ("topology.metadata.replication_lag", "failover.metadata.lag")
#: With fewer samples the scenario's own distribution is left in place.
MIN_SAMPLES = 30
SERIES = "metadata.replica_lag"
QUANTILES = (0.5, 0.9, 0.95, 0.99)


def fit_samples(samples: Sequence[float]) -> Any:
    """A :class:`sim.calibrate.Fit` of the positive ``samples`` (maximum likelihood), with
    the sample's exact KS distance to it."""
    from scipy.stats import kstest, lognorm

    from .calibrate import Fit

    logs = np.log(np.asarray(samples, dtype=float))
    median, sigma = math.exp(float(np.mean(logs))), max(float(np.std(logs)), 1e-9)
    ks = float(kstest(np.exp(logs), lognorm(s=sigma, scale=median).cdf).statistic)
    return Fit(median, sigma, ks)


def _row(samples: Sequence[float], fit: Any, lag: Mapping[str, Any]) -> dict[str, Any]:
    measured = np.quantile(np.asarray(samples, dtype=float), QUANTILES) if samples else None
    quantiles = {f"p{round(q * 100):d}": {
        "measured": None if measured is None else float(measured[i]),
        "fitted": None if fit is None else fit.quantile(q)} for i, q in enumerate(QUANTILES)}
    row: dict[str, Any] = {"series": SERIES, "observations": float(len(samples)),
                           "idle": lag.get("idle", 0), "unavailable": lag.get("unavailable", 0),
                           "quantiles": quantiles}
    if fit is not None:
        row.update(median=fit.median, p99=fit.p99, sigma=fit.sigma, ks=fit.ks)
    return row


def lag_overlay(lag: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """(overrides, fitted rows, not-fitted rows) from ``GET /admin/metadata/lag``'s answer
    (None: the stand-in serves no lag samples)."""
    if lag is None:
        return {}, [], [{**_row([], None, {}), "reason": "the stand-in serves no replica lag "
                         "samples (GET /admin/metadata/lag): the scenario's lag is left"}]
    samples = [float(s) for s in lag.get("samples") or [] if float(s) > 0.0]
    if len(samples) < MIN_SAMPLES:
        why = (f"{len(samples)} lag samples (fewer than {MIN_SAMPLES}; {lag.get('idle', 0)} "
               "idle): run a load with metadata writes for a minute first; the scenario's "
               "replication lag is left")
        return {}, [], [{**_row(samples, None, lag), "reason": why}]
    fit = fit_samples(samples)
    value = {"dist": "lognormal", "median": f"{fit.median * 1e6:.1f}us",
             "p99": f"{fit.p99 * 1e6:.1f}us"}
    row = {**_row(samples, fit, lag), "target": ", ".join(LAG_TARGETS)}
    # one copy per target: the same object twice would be a YAML alias in the overlay
    return {target: dict(value) for target in LAG_TARGETS}, [row], []
