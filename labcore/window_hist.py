"""Window histograms stored sparse, exactly: the latency bins of :mod:`labcore.facts`.

A run's success histogram is logically a dense int64 array (window, tenant, bin) and its
failure histogram (window, bin); but most of a window's 1,000 bins are empty for a tenant
(a tenant with ten requests in a window fills at most ten), and a dense array costs
8 kB per tenant and window whatever the traffic: 480 MB for ten minutes of 1,000 tenants.
:class:`WindowHist` keeps only the non-empty bins, row by row in the (window, tenant) order
of a compressed sparse row matrix: ``indptr`` (one offset per row), ``bins`` (uint16) and
``counts`` (the narrowest unsigned integer holding the largest count, widened when a
count outgrows it). No count is rounded or dropped, so every sum over tenants or windows
is the same integer as over the dense array.

The metrics densify only what they read and only a block of windows at a time
(:meth:`WindowHist.window_sums`, :meth:`WindowHist.tenant`, :meth:`WindowHist.total`),
so their temporaries do not grow with the run's length. ``np.asarray(hist)`` gives the
dense array (the fingerprint hashes that; ``save_facts`` writes the sparse parts), and a
dense array of a runner that writes one (the Locust client's recorder, an older
``facts.npz``) is read through :meth:`WindowHist.of`.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["HistBuilder", "WindowHist"]

_WIDER = {np.dtype(np.uint16): np.uint32, np.dtype(np.uint32): np.int64}
#: A block of windows densified at a time holds about this many entries, and at most
#: this many windows (its dense sums: 1 MB).
BLOCK_ENTRIES = 1 << 16
BLOCK_WINDOWS = 128


class WindowHist(NDArrayOperatorsMixin):
    """Counts of shape ``(window, tenant, bin)`` (or ``(window, bin)``), sparse by row."""

    def __init__(self, indptr: np.ndarray, bins: np.ndarray, counts: np.ndarray,
                 shape: tuple[int, ...]) -> None:
        self.indptr, self.bins, self.counts = indptr, bins, counts
        self.shape = tuple(int(n) for n in shape)
        self.n_windows, self.n_bins = self.shape[0], self.shape[-1]
        self.n_tenants = self.shape[1] if len(self.shape) == 3 else 1
        if len(indptr) != self.n_windows * self.n_tenants + 1:
            raise ValueError(f"indptr has {len(indptr)} offsets for shape {self.shape}")

    dtype = np.dtype(np.int64)  # the dense array's: what every sum returns

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.bins.nbytes + self.counts.nbytes)

    @classmethod
    def of(cls, array: Any) -> WindowHist:
        """``array`` itself if sparse already, else the sparse form of a dense array."""
        if isinstance(array, WindowHist):
            return array
        dense = np.asarray(array)
        builder = HistBuilder(dense.shape[1] if dense.ndim == 3 else None, dense.shape[-1],
                              len(dense))
        for row in dense:
            builder.append(row)
        return builder.build()

    # -- dense views, a block of windows at a time ----------------------------------

    def blocks(self, windows: np.ndarray | None = None,
               tenant: int | None = None) -> Iterator[np.ndarray]:
        """``windows`` (default: all, in order) in consecutive runs of at most
        :data:`BLOCK_WINDOWS` windows and about :data:`BLOCK_ENTRIES` entries (of every
        tenant, or of ``tenant`` only), at least one window each."""
        windows = np.arange(self.n_windows) if windows is None else np.asarray(windows)
        first = windows * self.n_tenants + (0 if tenant is None else tenant)
        last = first + (self.n_tenants if tenant is None else 1)
        by_entries = np.cumsum(self.indptr[last] - self.indptr[first]) // BLOCK_ENTRIES
        by_count = np.arange(len(windows)) // BLOCK_WINDOWS
        cuts = np.flatnonzero((np.diff(by_entries) != 0) | (np.diff(by_count) != 0)) + 1
        yield from (w for w in np.split(windows, cuts) if len(w))

    def window_sums(self, windows: np.ndarray, tenants: np.ndarray | None = None) -> np.ndarray:
        """Dense ``(len(windows), bin)``: each window's counts summed over ``tenants``
        (default: every tenant)."""
        tenants = np.arange(self.n_tenants) if tenants is None else np.asarray(tenants)
        rows = (np.asarray(windows)[:, None] * self.n_tenants + tenants[None, :]).ravel()
        where, entry = self._entries(rows)
        out = np.zeros((len(windows), self.n_bins), dtype=np.int64)
        np.add.at(out, (where // len(tenants), self.bins[entry]), self.counts[entry])
        return out

    def tenant(self, t: int, windows: np.ndarray) -> np.ndarray:
        """Dense ``(len(windows), bin)``: tenant ``t``'s counts in ``windows``."""
        return self.window_sums(windows, np.array([t]))

    def total(self, mask: np.ndarray | None = None, tenant: int | None = None) -> np.ndarray:
        """Dense ``(bin,)``: the counts of the windows of ``mask`` (default: all), summed
        over every tenant (or ``tenant``'s only)."""
        windows = np.arange(self.n_windows) if mask is None else np.flatnonzero(mask)
        tenants = np.arange(self.n_tenants) if tenant is None else np.array([tenant])
        out = np.zeros(self.n_bins, dtype=np.int64)
        for block in self.blocks(windows, tenant):
            _, entry = self._entries((block[:, None] * self.n_tenants + tenants).ravel())
            np.add.at(out, self.bins[entry], self.counts[entry])
        return out

    def _entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For every stored entry of ``rows``: its position in ``rows``, its index."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        where = np.repeat(np.arange(len(rows)), lengths)
        offset = np.cumsum(lengths) - lengths  # where each row's entries start in the output
        return where, np.arange(len(where)) - offset[where] + starts[where]

    # -- the dense array, for code that wants one ------------------------------------

    def toarray(self, windows: Any = slice(None)) -> np.ndarray:
        """The dense int64 array (of ``windows`` only, any first-axis index, if given)."""
        chosen = np.arange(self.n_windows)[windows]
        scalar = np.ndim(chosen) == 0
        chosen = np.atleast_1d(chosen)
        rows = (chosen[:, None] * self.n_tenants + np.arange(self.n_tenants)).ravel()
        where, entry = self._entries(rows)
        out = np.zeros((len(rows), self.n_bins), dtype=np.int64)
        out[where, self.bins[entry]] = self.counts[entry]
        out = out.reshape((len(chosen), *self.shape[1:]))
        return out[0] if scalar else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        dense = self.toarray()
        return dense if dtype is None else dense.astype(dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """Operators (``==``, ``+``...) act on the dense array."""
        dense = tuple(x.toarray() if isinstance(x, WindowHist) else x for x in inputs)
        return getattr(ufunc, method)(*dense, **kwargs)

    def __getitem__(self, key: Any) -> np.ndarray:
        """Indexing densifies: only the windows selected by the first index."""
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        dense = self.toarray(first)
        if np.ndim(dense) < self.ndim:  # ``first`` was one window
            return dense[rest]
        return dense[(slice(None), *rest)]

    def __len__(self) -> int:
        return self.n_windows

    def sum(self, axis: Any = None) -> Any:
        """Sums as numpy's; over everything without densifying."""
        if axis is None:
            return np.int64(self.counts.sum(dtype=np.int64))
        return self.toarray().sum(axis=axis)

    def __repr__(self) -> str:
        return f"WindowHist(shape={self.shape}, entries={len(self.bins)}, {self.nbytes} bytes)"


class HistBuilder:
    """Grows a :class:`WindowHist` one window at a time. Its buffers are reserved for
    the ``windows`` announced at the fill rate so far (``np.zeros`` pages cost no memory
    until written, so a generous reservation is free, while copying a full buffer into
    a larger one would hold both), and grown again only if the run outgrows them."""

    def __init__(self, n_tenants: int | None, n_bins: int, windows: int = 64) -> None:
        self.n_tenants, self.n_bins, self.expected = n_tenants, n_bins, windows
        self.windows = self.entries = 0
        self.indptr = np.zeros(max(1, windows) * (n_tenants or 1) + 1, dtype=np.int64)
        self.bins = np.zeros(1 << 12, dtype=np.uint16)
        self.counts = np.zeros(1 << 12, dtype=np.uint16)

    def append(self, window: Any) -> None:
        """One window's dense counts: ``(tenant, bin)``, or ``(bin,)`` without tenants."""
        dense = np.asarray(window, dtype=np.int64).reshape(-1, self.n_bins)
        rows, bins = np.nonzero(dense)  # row by row, bins in order
        values = dense[rows, bins]
        if len(values) and values.min() < 0:
            raise ValueError("a histogram count is negative")
        self._widen(int(values.max()) if len(values) else 0)
        n, r, end = self.entries, self.windows * len(dense), self.entries + len(values)
        self.indptr = _fit(self.indptr, r + 1, r + len(dense) + 1)
        self.indptr[r + 1 : r + len(dense) + 1] = n + np.cumsum(
            np.bincount(rows, minlength=len(dense)))
        if end > len(self.bins):
            reserve = max(end, 2 * len(self.bins), self._projected(end))
            self.bins, self.counts = _fit(self.bins, n, reserve), _fit(self.counts, n, reserve)
        self.bins[n:end], self.counts[n:end] = bins, values
        self.entries, self.windows = end, self.windows + 1

    def _projected(self, entries: int) -> int:
        """Entries for the announced windows at this window's fill rate, and a quarter."""
        windows = max(self.expected, self.windows + 1)
        return int(entries / (self.windows + 1) * windows * 1.25)

    def _widen(self, largest: int) -> None:
        """Widen the counts' type until ``largest`` fits: no count is ever truncated."""
        while largest > np.iinfo(self.counts.dtype).max:
            wider = np.zeros(len(self.counts), dtype=_WIDER[self.counts.dtype])
            wider[: self.entries] = self.counts[: self.entries]
            self.counts = wider

    def build(self) -> WindowHist:
        """The windows so far (views of the buffers, not copies)."""
        rows = self.windows * (self.n_tenants or 1)
        shape = ((self.windows, self.n_tenants, self.n_bins) if self.n_tenants is not None
                 else (self.windows, self.n_bins))
        return WindowHist(self.indptr[: rows + 1], self.bins[: self.entries],
                          self.counts[: self.entries], shape)


def _fit(array: np.ndarray, used: int, size: int) -> np.ndarray:
    """``array``, or a copy of its first ``used`` items at least ``size`` long if
    ``size`` would not fit."""
    if size <= len(array):
        return array
    grown = np.zeros(max(size, 2 * len(array)), dtype=array.dtype)
    grown[:used] = array[:used]
    return grown
