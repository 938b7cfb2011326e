"""Packed arrays of numbers for the hot path: the cache's expiry table, the recorder's
histograms.

Compiled, they are ``librt.vecs.vec`` (mypyc's runtime library): machine numbers side by
side in one buffer, read and written in place by native code. A Python list of numbers
is a list of pointers to number objects elsewhere in memory: a read follows the pointer
(a second cache miss when the list is large and the access random), and a write that
changes a float, or a count past 256, allocates a new object. As plain Python, lists
stay, because the interpreter indexes a list faster than a ``vec``; the values are the
same either way, and the callers index both alike.

A ``vec`` exposes its buffer, so ``numpy.asarray`` reads it without a copy (read-only).
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING, cast

from .events import NATIVE

if TYPE_CHECKING:
    from librt.vecs import vec
    from mypy_extensions import i64

__all__ = ["floats", "ints"]


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
