"""The window-facts format shared by every runner: outcomes, latency bins, tier fields.

A run (simulated, or measured by a load client) is summarised per window and tenant as a
log-binned histogram of the latencies of successful requests, outcome counts and their
latency sum, per window (all tenants together) as the same for failed requests, plus named
counters and per-tier queueing integrals: the ``arrays`` of :class:`WindowFacts`. The metrics
(:mod:`labcore.metrics`) read only this format, so the simulator's recorder and the Locust
client's recorder both write it. The outcomes are data (:data:`OUTCOMES`, index 0 is
success): the simulator's kernel recorder is handed them by the model and knows none.

``arrays`` holds ``start`` (window, float), ``hist`` (window, tenant, :data:`N_BINS`:
successful requests only), ``latency_sum`` (window, tenant: successful requests only),
``fail_hist`` (window, :data:`N_BINS`) and ``fail_latency_sum`` (window): failed requests
of every tenant, ``outcomes`` (window, tenant, outcome), ``counter_names`` and ``counters``
(window, counter), ``tier_names`` and ``tiers`` (window, tier, :data:`TIER_FIELDS`).

The two histograms are int64 counts, held either dense (a numpy array: the Locust
client's recorder writes them so) or sparse and exact (a
:class:`~labcore.window_hist.WindowHist`: the simulator's, 8 kB per tenant and window
dense but mostly empty bins); ``np.asarray`` of either is the same dense array, and the
metrics read both through :meth:`WindowHist.of <labcore.window_hist.WindowHist.of>`.
On disk (:func:`save_facts`) a sparse histogram is its three parts and its shape.

Why successes and failures apart: the SLO's latency is over successful requests (a
fail-fast error answered in 0.1 ms must not make an outage look fast; failures count in
the error rate), while the all-outcome percentiles (``latency_all_p95``) stay computable
from ``hist`` plus ``fail_hist``. Failures are kept per window, not per tenant, so the
split costs one histogram per window instead of doubling the per-tenant ones: there is no
per-tenant all-outcome percentile.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .window_hist import WindowHist

if TYPE_CHECKING:
    from .scenario import Scenario

__all__ = [
    "BIN_GROWTH", "BIN_MIN", "N_BINS", "OUTCOMES", "TIER_FIELDS", "FaultMark", "RunFacts",
    "WindowFacts", "bin_index", "bin_value", "empty_arrays", "load_facts", "save_facts",
]

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


def empty_arrays(n_windows: int, n_tenants: int, counter_names: list[str],
                 window: float) -> dict[str, Any]:
    """Zeroed ``arrays`` for ``n_windows`` windows of ``window`` seconds and no tiers."""
    return {
        "start": np.arange(n_windows, dtype=float) * window,
        "hist": np.zeros((n_windows, n_tenants, N_BINS), dtype=np.int64),
        "outcomes": np.zeros((n_windows, n_tenants, len(OUTCOMES)), dtype=np.int64),
        "latency_sum": np.zeros((n_windows, n_tenants), dtype=float),
        "fail_hist": np.zeros((n_windows, N_BINS), dtype=np.int64),
        "fail_latency_sum": np.zeros(n_windows, dtype=float),
        "counter_names": list(counter_names),
        "counters": np.zeros((n_windows, len(counter_names)), dtype=np.int64),
        "tier_names": [],
        "tiers": np.zeros((n_windows, 0, len(TIER_FIELDS))),
    }


@dataclass(frozen=True)
class FaultMark:
    """A fault on the run's timeline: when it started and ended, and what it did."""

    kind: str
    start: float
    end: float | None
    detail: str


class WindowFacts(Protocol):
    """What the metrics read: the scenario, the windows' ``arrays``, the fault timeline,
    RPO losses, tenants, whole-run facts and logs. The simulator's ``RunResult`` and
    :class:`RunFacts` both are window facts."""

    @property
    def scenario(self) -> Scenario: ...
    @property
    def seed(self) -> int: ...
    @property
    def arrays(self) -> dict[str, Any]: ...
    @property
    def marks(self) -> tuple[FaultMark, ...]: ...
    @property
    def rpo_losses(self) -> tuple[tuple[float, float], ...]: ...
    @property
    def tenants(self) -> tuple[str, ...]: ...
    @property
    def facts(self) -> dict[str, float | None]: ...
    @property
    def logs(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunFacts:
    """Window facts measured by a runner other than the simulator (the Locust client)."""

    scenario: Scenario
    seed: int
    arrays: dict[str, Any]
    marks: tuple[FaultMark, ...]
    tenants: tuple[str, ...]
    rpo_losses: tuple[tuple[float, float], ...] = ()
    facts: dict[str, float | None] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict, repr=False)


# -- on disk: one runner's measured windows, read back by another (``sim conform``) -------

_LIST_KEYS = ("counter_names", "tier_names")
_SPARSE_PARTS = ("indptr", "bins", "counts", "shape")  # saved as ``s.<name>.<part>``


def save_facts(path: str | os.PathLike[str], facts: WindowFacts) -> None:
    """Write ``facts`` (arrays, fault marks, RPO losses, tenants, whole-run facts) as one
    ``.npz`` file: what a real runner leaves in its results folder (``facts.npz``)."""
    arrays: dict[str, Any] = {}
    for k, v in facts.arrays.items():
        if isinstance(v, WindowHist):
            parts = (v.indptr, v.bins, v.counts, np.asarray(v.shape, dtype=np.int64))
            arrays.update({f"s.{k}.{p}": x for p, x in zip(_SPARSE_PARTS, parts)})
        else:
            arrays[f"a.{k}"] = np.asarray(v, dtype=str) if k in _LIST_KEYS else np.asarray(v)
    meta = {
        "seed": facts.seed,
        "tenants": list(facts.tenants),
        "marks": [[m.kind, m.start, m.end, m.detail] for m in facts.marks],
        "rpo_losses": [list(x) for x in facts.rpo_losses],
        "facts": dict(facts.facts),
    }
    np.savez_compressed(path, meta=np.asarray(json.dumps(meta)), **arrays)


def load_facts(path: str | os.PathLike[str], scenario: Scenario) -> RunFacts:
    """Read a file written by :func:`save_facts` as :class:`RunFacts` of ``scenario``."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        arrays: dict[str, Any] = {}
        for key in data.files:
            if key.startswith("a."):
                name = key[2:]
                arrays[name] = ([str(x) for x in data[key]] if name in _LIST_KEYS
                                else data[key].copy())
        for name in {key.split(".")[1] for key in data.files if key.startswith("s.")}:
            arrays[name] = _sparse(path, name, [data[f"s.{name}.{p}"] for p in _SPARSE_PARTS])
    if "fail_hist" not in arrays:  # written before successes and failures were binned apart
        raise ValueError(f"{path}: no 'fail_hist' array: these window facts predate the "
                         "success-only latency histogram; record them again")
    return RunFacts(
        scenario=scenario, seed=int(meta["seed"]), arrays=arrays,
        marks=tuple(FaultMark(k, float(s), None if e is None else float(e), d)
                    for k, s, e, d in meta["marks"]),
        tenants=tuple(meta["tenants"]),
        rpo_losses=tuple((float(a), float(b)) for a, b in meta["rpo_losses"]),
        facts=dict(meta["facts"]),
    )


def _sparse(path: str | os.PathLike[str], name: str, parts: list[np.ndarray]) -> WindowHist:
    """A sparse histogram read back, its parts checked against each other."""
    indptr, bins, counts, shape = parts
    ok = (shape.ndim == 1 and len(shape) in (2, 3) and indptr.ndim == 1 and len(indptr) > 0
          and indptr[0] == 0 and indptr[-1] == len(bins) == len(counts)
          and bool(np.all(np.diff(indptr) >= 0)) and int(np.prod(shape[:-1])) + 1 == len(indptr)
          and (len(bins) == 0 or (int(bins.max()) < int(shape[-1]) and counts.min() >= 0)))
    if not ok:
        raise ValueError(f"{path}: sparse histogram {name!r}: inconsistent parts")
    return WindowHist(indptr, bins, counts, tuple(int(n) for n in shape))
