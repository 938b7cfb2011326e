"""Service-time distributions as immutable value objects.

Each distribution is chosen by name in a scenario file, knows its theoretical mean,
validates its arguments, has a readable ``repr`` and hands out a fast zero-argument
sampler bound to one named numpy stream. Samplers draw blocks of values with numpy and
hand them out one by one: a list pop is far cheaper than a numpy scalar draw or
``random.lognormvariate``, and the sequence is still fixed by the stream's seed.

    service_time: 20ms                                   # constant
    service_time: {dist: exponential, mean: 50ms}
    service_time: {dist: lognormal, median: 120ms, p99: 900ms}
    service_time: {dist: empirical, file: data/crm_latency.csv}   # one column, seconds
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated, Callable, Literal, Union

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from .units import parse_duration

__all__ = [
    "Constant",
    "Exponential",
    "LogNormal",
    "Uniform",
    "Empirical",
    "Distribution",
    "Sampler",
    "Z99",
    "BLOCK",
]

Sampler = Callable[[], float]
#: Values drawn per numpy call.
BLOCK = 4096
Seconds = Annotated[float, BeforeValidator(parse_duration)]
#: Standard normal quantile at 0.99: a lognormal's p99 is median * exp(Z99 * sigma).
Z99 = 2.3263478740408408


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def mean(self) -> float:
        raise NotImplementedError

    def sampler(self, rng: np.random.Generator) -> Sampler:
        """A zero-argument function returning successive draws from ``rng``."""
        buffer, refill = self.buffered(rng)
        return lambda: buffer.pop() if buffer else refill()

    def buffered(self, rng: np.random.Generator) -> tuple[list[float], Sampler]:
        """The sampler's parts, for a hot path that inlines it: ``buffer.pop() if buffer
        else refill()`` gives the same successive draws as :meth:`sampler`."""
        buffer: list[float] = []

        def refill() -> float:
            block = self._draw(rng, BLOCK).tolist()
            block.reverse()  # pop() from the end hands values out in drawn order
            buffer.extend(block)
            return buffer.pop()

        return buffer, refill

    def block(self, rng: np.random.Generator) -> np.ndarray:
        """The next ``BLOCK`` draws from ``rng`` as float64, in the order :meth:`sampler`
        hands them out (blocks taken one after another give its successive draws)."""
        return np.ascontiguousarray(self._draw(rng, BLOCK), dtype=np.float64)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.model_dump(exclude={"dist"}).items())
        return f"{type(self).__name__}({fields})"


class Constant(_Dist):
    """Always the same value: for exact timelines and deterministic tiers."""

    dist: Literal["constant"] = "constant"
    value: Seconds

    @classmethod
    def of(cls, duration: str) -> "Constant":
        """``Constant.of("1ms")``: a constant from a duration with its unit."""
        return cls.model_validate({"value": duration})

    @property
    def mean(self) -> float:
        return self.value

    def sampler(self, rng: np.random.Generator) -> Sampler:
        value = self.value
        return lambda: value

    def buffered(self, rng: np.random.Generator) -> tuple[list[float], Sampler]:
        value = self.value
        return [], lambda: value  # the buffer stays empty: every draw is the constant

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)  # draws nothing from ``rng``, as the sampler


class Exponential(_Dist):
    """Memoryless service: the M in M/M/c."""

    dist: Literal["exponential"]
    mean_: Seconds = Field(alias="mean", gt=0)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def mean(self) -> float:
        return self.mean_

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_, n)

    def __repr__(self) -> str:
        return f"Exponential(mean={self.mean_!r})"


class LogNormal(_Dist):
    """Right-skewed latency given by its median and 99th percentile, as SREs quote it."""

    dist: Literal["lognormal"]
    median: Seconds = Field(gt=0)
    p99: Seconds = Field(gt=0)

    @model_validator(mode="after")
    def _p99_above_median(self) -> "LogNormal":
        if self.p99 <= self.median:
            raise ValueError(f"p99 ({self.p99}s) must be larger than median ({self.median}s)")
        return self

    @property
    def sigma(self) -> float:
        return math.log(self.p99 / self.median) / Z99

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2.0)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median), self.sigma, n)


class Uniform(_Dist):
    """Uniform between low and high: for spin-up times known only by a range."""

    dist: Literal["uniform"]
    low: Seconds
    high: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> "Uniform":
        if self.high < self.low:
            raise ValueError(f"high ({self.high}s) must not be below low ({self.low}s)")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2.0

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


class Empirical(_Dist):
    """Resampling of measured values (seconds) from a one-column CSV file.

    ``file`` is resolved relative to the scenario file by the loader.
    """

    dist: Literal["empirical"]
    file: str
    column: str | None = None
    _values: tuple[float, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> "Empirical":
        base = (info.context or {}).get("base_dir")
        path = Path(base, self.file) if base else Path(self.file)
        if not path.is_file():
            raise ValueError(f"empirical distribution file not found: {self.file}")
        with path.open(newline="") as handle:  # read once, at validation
            rows = list(csv.DictReader(handle))
        if not rows:
            raise ValueError(f"{self.file} has no rows")
        column = self.column or next(iter(rows[0]))
        try:
            values = tuple(float(row[column]) for row in rows)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{self.file}: column {column!r} must hold seconds: {exc}") from None
        if min(values) < 0:
            raise ValueError(f"{self.file}: negative durations")
        object.__setattr__(self, "_values", values)
        return self

    @property
    def mean(self) -> float:
        return sum(self._values) / len(self._values)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(np.asarray(self._values), n)


def _shorthand(value: object) -> object:
    """``20ms`` or ``0`` means a constant."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


_Tagged = Annotated[
    Union[Constant, Exponential, LogNormal, Uniform, Empirical], Field(discriminator="dist")
]
Distribution = Annotated[_Tagged, BeforeValidator(_shorthand)]
