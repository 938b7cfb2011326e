"""Facts in the hot path, metrics later: per-window aggregates of a run.

The recorder keeps no per-request record. Each window (``run.window`` long) holds, per
tenant, a log-binned histogram of successful requests' latencies (2% bins: percentiles are
exact to within ±1%), outcome counts and the successes' latency sum; for failed requests,
one histogram and latency sum per window (all tenants: see :mod:`labcore.facts`); plus
named counters (cache hits, 429s, retries...) and, per tier, the queueing integrals of
its stations. Memory grows with the number of
windows only, never with the number of requests.

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
from typing import Any, Generator, Sequence

import numpy as np
import simpy

from labcore.facts import BIN_GROWTH, BIN_MIN, N_BINS, TIER_FIELDS

from .station import Station

__all__ = ["Recorder", "Window"]

_INV_LOG_GROWTH = 1.0 / math.log(BIN_GROWTH)
_LAST_BIN = N_BINS - 1
_log = math.log


class Window:
    """Aggregates of one window: ``[start, start + length)``."""

    __slots__ = ("start", "hist", "outcomes", "latency_sum", "fail_hist", "fail_latency_sum",
                 "counters", "tiers", "wait_hists")

    def __init__(self, start: float, n_tenants: int, n_outcomes: int) -> None:
        self.start = start
        self.hist = [[0] * N_BINS for _ in range(n_tenants)]  # successes
        self.outcomes = [[0] * n_outcomes for _ in range(n_tenants)]
        self.latency_sum = [0.0] * n_tenants  # successes
        self.fail_hist = [0] * N_BINS  # failures of every tenant
        self.fail_latency_sum = 0.0
        self.counters: dict[str, int] = {}
        self.tiers: dict[str, tuple[float, ...]] = {}
        self.wait_hists: dict[str, np.ndarray] = {}


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
    ) -> None:
        self.env, self.window, self.tenants = env, window, tuple(tenants)
        #: Names of the final outcomes, index 0 success: data from the model.
        self.outcomes = tuple(outcomes)
        self.windows: list[Window] = []
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
        index = int(_log(latency / BIN_MIN) * _INV_LOG_GROWTH) if latency > BIN_MIN else 0
        if index > _LAST_BIN:
            index = _LAST_BIN
        if outcome:
            w.fail_hist[index] += 1
            w.fail_latency_sum += latency
        else:
            w.hist[tenant][index] += 1
            w.latency_sum[tenant] += latency
        w.outcomes[tenant][outcome] += 1

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
                    for i, n in enumerate(value):
                        w.counters[f"{prefix}.{name}[{self.tenants[i]}]"] = n
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
        self.windows.append(w)
        self.current = Window(self.env.now, len(self.tenants), len(self.outcomes))

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
        windows = self.windows
        counter_names = sorted({k for w in windows for k in w.counters})
        tier_names = list(self.tiers)
        out = {
            "start": np.array([w.start for w in windows], dtype=float),
            "hist": np.array([w.hist for w in windows], dtype=np.int64).reshape(
                len(windows), len(self.tenants), N_BINS
            ),
            "outcomes": np.array([w.outcomes for w in windows], dtype=np.int64).reshape(
                len(windows), len(self.tenants), len(self.outcomes)
            ),
            "latency_sum": np.array([w.latency_sum for w in windows], dtype=float).reshape(
                len(windows), len(self.tenants)
            ),
            "fail_hist": np.array([w.fail_hist for w in windows], dtype=np.int64).reshape(
                len(windows), N_BINS),
            "fail_latency_sum": np.array([w.fail_latency_sum for w in windows], dtype=float),
            "counter_names": counter_names,
            "counters": np.array(
                [[w.counters.get(k, 0) for k in counter_names] for w in windows], dtype=np.int64
            ).reshape(len(windows), len(counter_names)),
            "tier_names": tier_names,
            "tiers": np.array(
                [[w.tiers.get(t, (0.0,) * len(TIER_FIELDS)) for t in tier_names] for w in windows],
                dtype=float,
            ).reshape(len(windows), len(tier_names), len(TIER_FIELDS)),
        }
        if self.wait_histograms:  # opt-in: absent otherwise, so default runs are unchanged
            empty = np.zeros(N_BINS, dtype=np.int64)
            out["tier_wait_hist"] = np.array(
                [[w.wait_hists.get(t, empty) for t in tier_names] for w in windows],
                dtype=np.int64).reshape(len(windows), len(tier_names), N_BINS)
        return out
