"""Closed forms of textbook queues: Erlang C (M/M/c), the M/M/c/K chain, M/D/1.

Pure functions of λ (arrivals per second), μ (services per second per server), c and
K; they know nothing of scenarios. Waits are those of admitted jobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["StationTheory", "erlang_c", "md1", "mmc", "mmc_wait_quantile", "mmc_wait_tail", "mmck"]


def erlang_c(c: int, lam: float, mu: float) -> float:
    """P(wait) in an M/M/c queue (Erlang C); requires λ < cμ."""
    a = lam / mu
    rho = a / c
    if rho >= 1.0:
        raise ValueError(f"unstable M/M/{c}: rho = {rho:.3f}")
    below, term = 0.0, 1.0
    for k in range(c):  # term runs through a^k / k!
        below += term
        term *= a / (k + 1)
    top = term / (1.0 - rho)
    return top / (below + top)


@dataclass(frozen=True)
class StationTheory:
    """Steady-state figures of one station; waits are those of admitted jobs."""

    p_wait: float
    wq: float
    utilization: float
    p_block: float = 0.0


def mmc(c: int, lam: float, mu: float) -> StationTheory:
    """M/M/c: Erlang C, Wq = P(wait) / (cμ − λ), utilisation λ / cμ."""
    p_wait = erlang_c(c, lam, mu)
    return StationTheory(p_wait, p_wait / (c * mu - lam), lam / (c * mu))


def mmc_wait_tail(c: int, lam: float, mu: float, t: float) -> float:
    """M/M/c, FIFO: P(W > t) = C(c, a)·exp(−(cμ − λ)·t) for t ≥ 0 (Erlang C times the
    tail of the exponential wait of a job that waits)."""
    return erlang_c(c, lam, mu) * math.exp(-(c * mu - lam) * t)


def mmc_wait_quantile(c: int, lam: float, mu: float, q: float) -> float:
    """M/M/c, FIFO: the ``q`` quantile of the wait, 0 when 1 − q ≥ P(wait)."""
    p_wait = erlang_c(c, lam, mu)
    if 1.0 - q >= p_wait:
        return 0.0
    return math.log(p_wait / (1.0 - q)) / (c * mu - lam)


def mmck(c: int, k: int, lam: float, mu: float) -> StationTheory:
    """M/M/c/K (at most K in the station): blocking p_K, waits of admitted jobs."""
    a, rho = lam / mu, lam / (c * mu)
    weights = [a**n / math.factorial(n) for n in range(c)]
    weights += [a**c / math.factorial(c) * rho ** (n - c) for n in range(c, k + 1)]
    total = sum(weights)
    p = [w / total for w in weights]
    admitted = 1.0 - p[k]
    lq = sum((n - c) * p[n] for n in range(c, k + 1))
    p_wait = sum(p[c:k]) / admitted  # PASTA: an admitted arrival sees c..K-1 present
    return StationTheory(p_wait, lq / (lam * admitted), lam * admitted / (c * mu), p[k])


def md1(lam: float, service: float) -> StationTheory:
    """M/D/1 (Pollaczek–Khinchine): Wq = ρ·D / (2(1 − ρ)); P(wait) = ρ."""
    rho = lam * service
    if rho >= 1.0:
        raise ValueError(f"unstable M/D/1: rho = {rho:.3f}")
    return StationTheory(rho, rho * service / (2.0 * (1.0 - rho)), rho)

