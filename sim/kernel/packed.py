"""Packed arrays of numbers for the hot path: the cache's expiry table, the recorder's
histograms, the workload's pre-drawn gaps and queries.

Compiled, they are ``librt.vecs.vec`` (mypyc's runtime library): machine numbers side by
side in one buffer, read and written in place by native code. A Python list of numbers
is a list of pointers to number objects elsewhere in memory: a read follows the pointer
(a second cache miss when the list is large and the access random), and a write that
changes a float, or a count past 256, allocates a new object. As plain Python, lists
stay, because the interpreter indexes a list faster than a ``vec``; the values are the
same either way, and the callers index both alike.

A ``vec`` exposes its buffer, so ``numpy.asarray`` reads it without a copy (read-only),
and a ``vec`` is built from a numpy array of its own type through the array's buffer
(:func:`from_floats`, :func:`from_ints`: about 2 ns a value, where ``tolist`` makes an
object of each).
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING, Final, cast

if TYPE_CHECKING:
    import numpy as np
    from librt.vecs import vec
    from mypy_extensions import i64

    from labcore.distributions import Distribution

__all__ = ["NATIVE", "Draws", "floats", "from_floats", "from_ints", "grown_floats", "grown_ints",
           "ints"]


def _probe() -> None:
    """Compiled by mypyc, a function has no ``__code__``."""


#: True where the hot path runs compiled (mypyc builds the kernel and the model's hot
#: modules together), False as plain Python.
NATIVE: Final[bool] = not hasattr(_probe, "__code__")


def floats(n: int, fill: float) -> vec[float]:
    """``n`` doubles, each ``fill``."""
    if NATIVE:
        from librt.vecs import vec
        return vec[float](repeat(fill, n), capacity=n)
    return cast("vec[float]", [fill] * n)


def ints(n: int) -> vec[i64]:
    """``n`` 64-bit integers, each 0."""
    if NATIVE:
        from librt.vecs import vec
        return vec[i64](repeat(0, n), capacity=n)
    return cast("vec[i64]", [0] * n)


def from_floats(values: np.ndarray) -> vec[float]:
    """A copy of the float64 array ``values`` (compiled only: read through its buffer)."""
    from librt.vecs import vec
    return vec[float](values)


def from_ints(values: np.ndarray) -> vec[i64]:
    """A copy of the int64 array ``values`` (compiled only: read through its buffer)."""
    from librt.vecs import vec
    return vec[i64](values)


def grown_floats(values: vec[float], n: int) -> vec[float]:
    """``values``, then zeros up to ``n`` values in all."""
    more = floats(n, 0.0)
    for i in range(len(values)):
        more[i] = values[i]
    return more


def grown_ints(values: vec[i64], n: int) -> vec[i64]:
    """``values``, then zeros up to ``n`` values in all."""
    more = ints(n)
    for i in range(len(values)):
        more[i] = values[i]
    return more


class Draws:
    """Successive draws of ``dist`` from ``rng`` (the values its ``sampler`` gives), a
    block at a time, read natively from a packed array: for compiled hot paths, where a
    sampler is a Python call and each draw a float object. Plain Python, a sampler's
    inlined ``buffer.pop()`` is faster."""

    __slots__ = ("dist", "rng", "values", "pos")

    def __init__(self, dist: Distribution, rng: np.random.Generator) -> None:
        self.dist, self.rng = dist, rng
        self.values = floats(0, 0.0)
        self.pos: i64 = 0

    def draw(self) -> float:
        """The next draw."""
        pos = self.pos
        if pos == len(self.values):
            self.values = from_floats(self.dist.block(self.rng))
            pos = 0
        self.pos = pos + 1
        return self.values[pos]
