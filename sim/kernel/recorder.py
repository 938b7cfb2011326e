"""Facts in the hot path, metrics later: per-window aggregates of a run.

The recorder keeps no per-request record. Each window (``run.window`` long) holds, per
tenant, a log-binned histogram of successful requests' latencies (2% bins: percentiles are
exact to within ±1%), outcome counts and the successes' latency sum; for failed requests,
one histogram and latency sum per window (all tenants: see :mod:`labcore.facts`); plus
named counters (cache hits, 429s, retries...) and, per tier, the queueing integrals of
its stations. Memory grows with the number of windows only, never with the number of
requests.

The window being filled is held in packed arrays, a row per tenant
(:mod:`sim.kernel.packed`: compiled, machine integers and doubles counted in place; as
plain Python, lists, whose ``+= 1`` the interpreter runs several times faster than on a
numpy array); a sealed window's histograms go into
sparse, exact builders (:class:`labcore.window_hist.HistBuilder`: only the non-empty
bins, so they cost what the traffic fills, not 8 kB per tenant and window) and its
other per-tenant fields into preallocated numpy arrays (:class:`_Columns`, sized from
the run's length), which :meth:`Recorder.arrays` hands over as they are: no window is
held twice.

The recorder knows no outcome names: the model hands it their number (``outcomes``, in
the order of :data:`labcore.facts.OUTCOMES`) and reports outcomes by index. The arrays are
:mod:`labcore.facts`' window-facts format (its bins and tier fields).

Optionally (``wait_histograms``), per tier, the queue waits of jobs that waited, in the
same 2% log bins (array ``tier_wait_hist``); jobs that did not wait are ``started -
waited``.

An optional trace keeps ``(time, request, event)`` tuples for exact-timeline tests.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final, Generator, Sequence

import numpy as np
import simpy

from labcore.facts import BIN_GROWTH, BIN_MIN, N_BINS, TIER_FIELDS
from labcore.window_hist import HistBuilder

from .packed import floats, ints
from .station import Station

if TYPE_CHECKING:
    from librt.vecs import vec
    from mypy_extensions import i64

__all__ = ["Recorder", "Window"]

# The Window fields held as dense arrays / as sparse histograms once the window is sealed.
_COLUMNS = ("start", "outcomes", "latency_sum", "fail_latency_sum")
_HISTS = ("hist", "fail_hist")

# Final: compiled code reads them as constants, not from the module's dictionary.
_INV_LOG_GROWTH: Final[float] = 1.0 / math.log(BIN_GROWTH)
_LAST_BIN: Final[int] = N_BINS - 1
_BIN_MIN: Final[float] = BIN_MIN


class Window:
    """Aggregates of one window: ``[start, start + length)``. ``hist`` and ``outcomes``
    hold a packed row per tenant (:meth:`dense` stacks them into numpy arrays)."""

    __slots__ = ("start", "hist", "outcomes", "latency_sum", "fail_hist", "fail_latency_sum",
                 "counters", "tiers", "wait_hists")

    def __init__(self, start: float, n_tenants: int, n_outcomes: int) -> None:
        # Typed, so that compiled code counts in machine integers and doubles.
        self.start: float = start
        self.hist: list[vec[i64]] = [ints(N_BINS) for _ in range(n_tenants)]  # successes
        self.outcomes: list[vec[i64]] = [ints(n_outcomes) for _ in range(n_tenants)]
        self.latency_sum: vec[float] = floats(n_tenants, 0.0)  # successes
        self.fail_hist: vec[i64] = ints(N_BINS)  # failures of every tenant
        self.fail_latency_sum: float = 0.0
        self.counters: dict[str, int] = {}
        self.tiers: dict[str, tuple[float, ...]] = {}
        self.wait_hists: dict[str, np.ndarray] = {}

    def dense(self, name: str) -> np.ndarray:
        """Field ``name`` as a numpy array: ``(tenant, bin)``, ``(tenant, outcome)``,
        ``(tenant,)``, ``(bin,)`` or, for a number, ``()``."""
        value = getattr(self, name)
        if name in ("hist", "outcomes"):
            return np.stack([np.asarray(row) for row in value])
        return np.asarray(value)  # compiled, a view of the packed buffer


class _Columns:
    """Per-window numpy arrays, one row per sealed window, preallocated for ``capacity``
    windows and doubled when full (``np.zeros`` pages cost no memory until written)."""

    def __init__(self, capacity: int, shapes: dict[str, tuple[tuple[int, ...], type]]) -> None:
        self.n = 0
        self.data: dict[str, np.ndarray] = {name: np.zeros((max(1, capacity), *shape), dtype=dtype)
                     for name, (shape, dtype) in shapes.items()}

    def append(self, row: dict[str, Any]) -> None:
        if self.n == len(next(iter(self.data.values()))):
            for name, array in self.data.items():  # rare: a run longer than announced
                grown = np.zeros((2 * len(array), *array.shape[1:]), dtype=array.dtype)
                grown[: self.n] = array
                self.data[name] = grown
        for name, value in row.items():
            self.data[name][self.n] = value
        self.n += 1

    def view(self, name: str) -> np.ndarray:
        """The sealed windows' rows (a view, not a copy)."""
        return self.data[name][: self.n]


class _Named:
    """Per-window values of named columns (counters, tiers), a numpy row per sealed window
    rather than a dict per window; a name that appears late is 0 in earlier windows."""

    def __init__(self, capacity: int, dtype: type, width: tuple[int, ...] = ()) -> None:
        self.n = 0
        self.index: dict[str, int] = {}  # name -> column, in order of appearance
        self.data: np.ndarray = np.zeros((max(1, capacity), 8, *width), dtype=dtype)

    def append(self, row: dict[str, Any]) -> None:
        for name in row:
            self.index.setdefault(name, len(self.index))
        rows, cols = self.data.shape[:2]
        if self.n == rows or len(self.index) > cols:  # doubled: a longer run, new names
            grown = np.zeros((2 * rows if self.n == rows else rows,
                              max(cols, 2 * len(self.index)), *self.data.shape[2:]),
                             dtype=self.data.dtype)
            grown[:rows, :cols] = self.data
            self.data = grown
        if row:
            self.data[self.n, [self.index[name] for name in row]] = list(row.values())
        self.n += 1

    def select(self, names: Sequence[str]) -> np.ndarray:
        """The sealed windows' values of ``names``, in that order (0 for unknown names)."""
        out = np.zeros((self.n, len(names), *self.data.shape[2:]), dtype=self.data.dtype)
        known = [i for i, name in enumerate(names) if name in self.index]
        out[:, known] = self.data[: self.n, [self.index[names[i]] for i in known]]
        return out


class Recorder:
    """Collects windows while the model runs; :meth:`arrays` hands them to the metrics."""

    def __init__(
        self,
        env: simpy.Environment,
        window: float,
        tenants: Sequence[str],
        trace: bool = False,
        *,
        outcomes: Sequence[str],
        wait_histograms: bool = False,
        windows: int = 64,
    ) -> None:
        self.env, self.window, self.tenants = env, window, tuple(tenants)
        #: Names of the final outcomes, index 0 success: data from the model.
        self.outcomes = tuple(outcomes)
        #: Sealed windows' outcomes and latency sums are rows of ``columns`` (``windows``:
        #: the capacity to preallocate, e.g. the run's length in windows), their histograms
        #: in ``hists``, their counters and tiers in ``counters`` and ``tier_rows``, their
        #: opt-in wait histograms in ``wait_hists``.
        self.wait_hists: list[dict[str, np.ndarray]] = []
        self.counters = _Named(windows, np.int64)
        self.tier_rows = _Named(windows, float, (len(TIER_FIELDS),))
        n_tenants, n_outcomes = len(self.tenants), len(self.outcomes)
        self.columns = _Columns(windows, {
            "start": ((), float), "outcomes": ((n_tenants, n_outcomes), np.int64),
            "latency_sum": ((n_tenants,), float), "fail_latency_sum": ((), float)})
        self.hists = {"hist": HistBuilder(n_tenants, N_BINS, windows),
                      "fail_hist": HistBuilder(None, N_BINS, windows)}
        self._names: dict[tuple[str, str], list[str]] = {}  # counter names, built once
        self.current = Window(0.0, len(self.tenants), len(self.outcomes))
        self.tiers: dict[str, list[Station]] = {}
        self.sources: list[tuple[str, Any, tuple[str, ...]]] = []
        self.trace: list[tuple[float, int, str]] | None = [] if trace else None
        self.wait_histograms = wait_histograms
        env.process(self._tick())

    def add_tier(self, name: str, stations: Sequence[Station]) -> None:
        self.tiers[name] = list(stations)
        if self.wait_histograms:
            for station in stations:
                station.waits = []

    def add_counters(self, prefix: str, source: Any, names: Sequence[str]) -> None:
        """Integer attributes of ``source`` (or per-tenant lists of them), read and reset at
        every window boundary as counters ``prefix.name`` (``prefix.name[tenant]``)."""
        self.sources.append((prefix, source, tuple(names)))

    # -- hot path ---------------------------------------------------------------------

    def request(self, tenant: int, latency: float, outcome: int) -> None:
        """A client request ended (after all its retries); outcome 0 is success."""
        w = self.current
        index = int(math.log(latency / _BIN_MIN) * _INV_LOG_GROWTH) if latency > _BIN_MIN else 0
        if index > _LAST_BIN:
            index = _LAST_BIN
        # ``x[i] = x[i] + y``, not ``x[i] += y``: compiled, the typed add, not a generic one.
        if outcome:
            fail_hist = w.fail_hist
            fail_hist[index] = fail_hist[index] + 1
            w.fail_latency_sum += latency
        else:
            hist = w.hist[tenant]
            hist[index] = hist[index] + 1
            sums = w.latency_sum
            sums[tenant] = sums[tenant] + latency
        outcomes = w.outcomes[tenant]
        outcomes[outcome] = outcomes[outcome] + 1

    def log(self, request_id: int, event: str) -> None:
        if self.trace is not None:
            self.trace.append((self.env.now, request_id, event))

    # -- windows ----------------------------------------------------------------------

    def _tick(self) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(self.window)
            self.close_window()

    def close_window(self) -> None:
        """Seal the current window (at a boundary, or at the end of the run)."""
        w = self.current
        if self.env.now <= w.start:
            return
        for prefix, source, names in self.sources:
            for name in names:
                value = getattr(source, name)
                if isinstance(value, list):
                    w.counters.update(zip(self._tenant_names(prefix, name), value))
                    setattr(source, name, [0] * len(value))
                else:
                    w.counters[f"{prefix}.{name}"] = value
                    setattr(source, name, 0)
        for name, stations in self.tiers.items():
            totals = [0.0] * len(TIER_FIELDS)
            for station in stations:
                station.sample_areas()
                for i, field in enumerate(TIER_FIELDS):
                    totals[i] += getattr(station, field)
                    zero = 0.0 if isinstance(getattr(station, field), float) else 0
                    setattr(station, field, zero)
            w.tiers[name] = tuple(totals)
            if self.wait_histograms:
                w.wait_hists[name] = self._bin_waits(stations)
        self.columns.append({name: w.dense(name) for name in _COLUMNS})
        for name in _HISTS:
            self.hists[name].append(w.dense(name))
        self.counters.append(w.counters)
        self.tier_rows.append(w.tiers)
        if self.wait_histograms:
            self.wait_hists.append(w.wait_hists)
        self.current = Window(self.env.now, len(self.tenants), len(self.outcomes))

    def _tenant_names(self, prefix: str, name: str) -> list[str]:
        """``prefix.name[tenant]`` for every tenant, built once rather than every window."""
        names = self._names.get((prefix, name))
        if names is None:
            names = self._names[(prefix, name)] = [f"{prefix}.{name}[{t}]" for t in self.tenants]
        return names

    @staticmethod
    def _bin_waits(stations: Sequence[Station]) -> np.ndarray:
        """The positive waits of the window's stations in the latency bins (then forgotten)."""
        waits = np.array([x for s in stations if s.waits for x in s.waits], dtype=float)
        for station in stations:
            station.waits = []
        index = np.zeros(len(waits), dtype=np.int64)
        above = waits > BIN_MIN
        index[above] = (np.log(waits[above] / BIN_MIN) * _INV_LOG_GROWTH).astype(np.int64)
        return np.bincount(np.minimum(index, _LAST_BIN), minlength=N_BINS)

    def arrays(self) -> dict[str, Any]:
        """The windows as :mod:`labcore.facts` arrays (window, tenant, ...)."""
        counter_names = sorted(self.counters.index)
        tier_names = list(self.tiers)
        out = {
            **{name: self.columns.view(name) for name in _COLUMNS},
            **{name: self.hists[name].build() for name in _HISTS},
            "counter_names": counter_names,
            "counters": self.counters.select(counter_names),
            "tier_names": tier_names,
            "tiers": self.tier_rows.select(tier_names),
        }
        if self.wait_histograms:  # opt-in: absent otherwise, so default runs are unchanged
            empty = np.zeros(N_BINS, dtype=np.int64)
            out["tier_wait_hist"] = np.array(
                [[w.get(t, empty) for t in tier_names] for w in self.wait_hists],
                dtype=np.int64).reshape(len(self.wait_hists), len(tier_names), N_BINS)
        return out
