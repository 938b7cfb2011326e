"""The schema's building blocks: strict models and values with units.

Every scenario model derives from :class:`Strict` (unknown keys are errors, parsed
scenarios are frozen); ``Duration``, ``Rate``, ``Fraction`` and ``Quantity`` convert
units once, at the edge (:mod:`labcore.units`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..units import parse_duration, parse_fraction, parse_quantity, parse_rate

__all__ = [
    "BACKOFF_STRATEGIES", "Duration", "Fraction", "Name", "Quantity", "RETRIABLE_OUTCOMES",
    "Rate", "RetryOutcome", "Strict",
]


Duration = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Quantity = Annotated[float, BeforeValidator(parse_quantity)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]

BACKOFF_STRATEGIES = ("none", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter")
#: Outcomes a client may retry; ``unauthorized`` never is (a new attempt gets the same 401).
RetryOutcome = Literal["timeout", "rate_limited", "unavailable", "overload", "provider_error"]
RETRIABLE_OUTCOMES: tuple[RetryOutcome, ...] = (
    "timeout", "rate_limited", "unavailable", "overload", "provider_error"
)


class Strict(BaseModel):
    """Unknown keys are errors; parsed scenarios never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
