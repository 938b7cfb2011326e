"""Comparing the lab with theory and Ciw: replications, tests, agreement.

For each quantity the lab's replications are compared with the theoretical value
(one-sample t test) and with Ciw's replications (Welch two-sample t test). With ``m``
tests in the table, a quantity agrees when all its p-values are at least
``family_alpha / m`` (Bonferroni): if the lab were right everywhere, the chance that
any row says "no" is at most ``family_alpha``. No margins are chosen by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import stats

from labcore.metrics import Estimate

from ..kernel import derive_seed
from ..run import replication_seeds, simulate
from .cases import CASES, Case, lab_quantities, theory
from .ciw_runner import ciw_quantities

__all__ = ["FAMILY_ALPHA", "Row", "agreement", "ciw_task", "lab_task", "validate"]

#: Family-wise error rate of the agreement column (Bonferroni over the table's tests).
FAMILY_ALPHA = 0.05


@dataclass(frozen=True)
class Row:
    """One quantity of one case: the three estimates and the tests between them."""

    case: str
    quantity: str
    theory: float | None
    ciw: tuple[float, ...]
    lab: tuple[float, ...]
    p_theory: float | None = None
    p_ciw: float | None = None
    alpha: float = FAMILY_ALPHA
    agree: bool = False

    @property
    def lab_estimate(self) -> Estimate:
        return Estimate(list(self.lab))

    @property
    def ciw_estimate(self) -> Estimate:
        return Estimate(list(self.ciw))

    @property
    def tests(self) -> int:
        return (self.p_theory is not None) + (self.p_ciw is not None)


def _p_one_sample(values: Sequence[float], target: float) -> float:
    arr = np.asarray(values, dtype=float)
    if arr.std(ddof=1) == 0.0:
        return 1.0 if arr[0] == target else 0.0
    return float(stats.ttest_1samp(arr, target).pvalue)


def _p_two_sample(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.std(ddof=1) == 0.0 and y.std(ddof=1) == 0.0:
        return 1.0 if x[0] == y[0] else 0.0
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def agreement(rows: Sequence[Row], family_alpha: float = FAMILY_ALPHA) -> list[Row]:
    """Test every row and decide agreement at ``family_alpha / m`` per test."""
    tested = []
    for row in rows:
        p_theory = None if row.theory is None else _p_one_sample(row.lab, row.theory)
        p_ciw = _p_two_sample(row.lab, row.ciw) if row.ciw else None
        tested.append((row, p_theory, p_ciw))
    m = sum((pt is not None) + (pc is not None) for _, pt, pc in tested)
    alpha = family_alpha / max(1, m)
    return [Row(r.case, r.quantity, r.theory, r.ciw, r.lab, pt, pc, alpha,
                all(p >= alpha for p in (pt, pc) if p is not None) and (pt, pc) != (None, None))
            for r, pt, pc in tested]


def lab_task(case: Case, extra: tuple[str, ...], seed: int) -> dict[str, float]:
    scenario = case.scenario(extra)
    return lab_quantities(case.kind, scenario, simulate(scenario, seed))


def ciw_task(case: Case, extra: tuple[str, ...], seed: int) -> dict[str, float]:
    return ciw_quantities(case.kind, case.scenario(extra), seed)


def validate(
    cases: Sequence[Case] = CASES,
    replications: int = 20,
    ciw_replications: int = 10,
    extra: Sequence[str] = (),
    seed: int = 1,
    jobs: int = 1,
) -> list[Row]:
    """Run every case through theory, Ciw and the lab; return the tested rows.

    ``extra`` overrides apply to every case (e.g. :data:`QUICK`)."""
    extra = tuple(extra)
    tasks: list[tuple[Callable[..., dict[str, float]], Case, int]] = []
    for case in cases:
        tasks += [(lab_task, case, s) for s in replication_seeds(seed, replications)]
        tasks += [(ciw_task, case, derive_seed(seed, "ciw", case.name, r) % 2**31)
                  for r in range(ciw_replications)]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(fn, case, extra, s) for fn, case, s in tasks]
            results = [f.result() for f in futures]
    else:
        results = [fn(case, extra, s) for fn, case, s in tasks]
    rows = []
    for case in cases:
        lab = [r for (fn, c, _), r in zip(tasks, results) if c is case and fn is lab_task]
        ciw = [r for (fn, c, _), r in zip(tasks, results) if c is case and fn is ciw_task]
        expected = theory(case.kind, case.scenario(extra))
        for quantity in lab[0]:
            rows.append(Row(case.name, quantity, expected.get(quantity),
                            tuple(r[quantity] for r in ciw), tuple(r[quantity] for r in lab)))
    return agreement(rows)

