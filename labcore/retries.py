"""Client retries: the backoff between attempts and the retry budget, one implementation.

The simulator's client (:mod:`sim.model.client`) and the chaos extension's background
load both retry a whole query as the scenario's ``topology.gateway.retries`` says: up to
``max_attempts`` attempts, on the outcomes in ``on``, after a backoff (``none``,
``exponential``, ``full_jitter``, ``equal_jitter``, ``decorrelated_jitter``, capped at
``cap``), and at most ``budget`` retries per first attempt (a token bucket).
"""

from __future__ import annotations

import random
from typing import Protocol

from .scenario import Retries

__all__ = ["Backoff", "RetryBudget", "RetryState"]


class RetryState(Protocol):
    """What a backoff remembers of one request: its last delay (decorrelated jitter)."""

    backoff: float


class Backoff:
    """Delay before retry ``n`` (1-based) under one of the classic strategies."""

    def __init__(self, spec: Retries, rng: random.Random) -> None:
        self.strategy, self.base, self.cap = spec.backoff, spec.base, spec.cap
        self.rng = rng

    def delay(self, request: RetryState, n: int) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** (n - 1))
        strategy = self.strategy
        if strategy == "none":
            return 0.0
        if strategy == "exponential":
            return ceiling
        if strategy == "full_jitter":
            return self.rng.uniform(0.0, ceiling)
        if strategy == "equal_jitter":
            return ceiling / 2.0 + self.rng.uniform(0.0, ceiling / 2.0)
        previous = request.backoff or self.base  # decorrelated jitter
        request.backoff = min(self.cap, self.rng.uniform(self.base, previous * 3.0))
        return request.backoff


class RetryBudget:
    """Retries may not exceed ``ratio`` of first attempts: every first attempt earns
    ``ratio`` of a token (up to ``reserve`` saved; the simulator's client adds it on its
    hot path, :meth:`earn` elsewhere), every retry spends one."""

    def __init__(self, ratio: float | None, reserve: float = 100.0) -> None:
        self.ratio, self.reserve = ratio, reserve
        self.tokens = reserve if ratio is not None else 0.0

    def earn(self) -> None:
        """A first attempt: its share of a token."""
        if self.ratio is not None:
            self.tokens = min(self.reserve, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.ratio is None:
            return True
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
