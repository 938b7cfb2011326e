"""Named random streams derived from one run seed.

Every consumer of randomness asks for a stream by name (``streams.get("engine.service")``).
A stream's seed is a stable hash of the run seed and the name, so adding a consumer never
shifts the others, and two scenarios that differ only in faults see the same workload
(common random numbers). ``hash()`` is salted per process, so we use BLAKE2b.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np

__all__ = ["Streams", "derive_seed"]


def derive_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed from a base seed and a path of names, stable across processes."""
    text = "/".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class Streams:
    """A registry of independent ``random.Random`` (scalar) and numpy (vector) streams."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._scalar: dict[str, random.Random] = {}
        self._vector: dict[str, np.random.Generator] = {}

    def get(self, name: str) -> random.Random:
        """The scalar stream called ``name`` (created on first use)."""
        stream = self._scalar.get(name)
        if stream is None:
            stream = self._scalar[name] = random.Random(derive_seed(self.seed, name))
        return stream

    def numpy(self, name: str) -> np.random.Generator:
        """The numpy stream called ``name``, for vectorised draws."""
        stream = self._vector.get(name)
        if stream is None:
            stream = np.random.default_rng(derive_seed(self.seed, "numpy", name))
            self._vector[name] = stream
        return stream

    def __repr__(self) -> str:
        return f"Streams(seed={self.seed}, names={sorted(self._scalar)})"
