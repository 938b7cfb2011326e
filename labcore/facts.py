"""The window-facts format shared by every runner: outcomes, latency bins, tier fields.

A run (simulated, or measured by a load client) is summarised per window and tenant as a
log-binned latency histogram, outcome counts and the latency sum, plus named counters and
per-tier queueing integrals. The metrics (:mod:`labcore.metrics`) read only this format, so
the simulator's recorder and the Locust client's recorder must both write it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BIN_GROWTH", "BIN_MIN", "N_BINS", "OUTCOMES", "TIER_FIELDS", "bin_index", "bin_value"]

#: Final outcomes of a client request; index 0 is success.
OUTCOMES = (
    "ok",
    "timeout",
    "rate_limited",
    "unauthorized",
    "unavailable",
    "overload",
    "provider_error",
    "capped",
)
N_BINS = 1000
BIN_MIN = 1e-4  # seconds: bin 0 holds everything faster than 100 µs
BIN_GROWTH = 1.02  # 2% bins: percentiles are exact to within ±1%
_INV_LOG_GROWTH = 1.0 / math.log(BIN_GROWTH)
TIER_FIELDS = ("started", "waited", "wait_sum", "busy_area", "capacity_area", "rejected", "dropped")


def bin_index(latency: float) -> int:
    """The histogram bin of one latency (seconds), clamped to the last bin."""
    index = int(math.log(latency / BIN_MIN) * _INV_LOG_GROWTH) if latency > BIN_MIN else 0
    return min(index, N_BINS - 1)


def bin_value(index: np.ndarray | int) -> np.ndarray | float:
    """The representative latency of a bin: its geometric midpoint (0 for bin 0)."""
    value = BIN_MIN * BIN_GROWTH ** (np.asarray(index) + 0.5)
    return np.where(np.asarray(index) == 0, 0.5 * BIN_MIN, value)
