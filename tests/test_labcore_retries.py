"""labcore.retries: the real runners' attempt loop with the simulator's backoff and budget."""

from __future__ import annotations

import random

from labcore.retries import ClientRetries, Tried, attempt
from labcore.scenario import Retries

SPEC = Retries(max_attempts=3, backoff="exponential", base="100ms", cap="150ms", budget=None)


def _run(outcomes: list[str], policy: ClientRetries,
         stop_after: int | None = None) -> tuple[Tried[str], list[str], list[float]]:
    sent: list[str] = []
    waits: list[float] = []

    def send() -> str:
        sent.append(outcomes[len(sent)])
        return sent[-1]

    def wait(delay: float) -> bool:
        waits.append(delay)
        return stop_after is not None and len(waits) >= stop_after

    return attempt(send, lambda o: o, policy, wait), sent, waits


def test_retries_until_an_outcome_it_does_not_retry() -> None:
    policy = ClientRetries(SPEC, random.Random(1))
    tried, sent, waits = _run(["unavailable", "timeout", "ok"], policy)
    assert (tried.outcome, tried.attempts, tried.retries, tried.denied) == ("ok", 3, 2, 0)
    assert waits == [0.1, 0.15]  # exponential: base, then 2 x base capped at 150 ms


def test_never_retries_unauthorized_nor_beyond_max_attempts() -> None:
    policy = ClientRetries(SPEC, random.Random(1))
    assert _run(["unauthorized", "ok"], policy)[0].attempts == 1
    tried, sent, _ = _run(["unavailable"] * 5, policy)
    assert (tried.outcome, tried.attempts, len(sent)) == ("unavailable", 3, 3)


def test_the_budget_refuses_and_a_stop_ends_the_backoff() -> None:
    budgeted = ClientRetries(Retries(max_attempts=3, budget="10%"), random.Random(1))
    budgeted.budget.tokens = 0.0
    tried, sent, waits = _run(["unavailable", "ok"], budgeted)
    assert (tried.attempts, tried.denied, waits) == (1, 1, [])
    assert budgeted.budget.tokens == 0.1  # the request earned its share, spent none
    tried, sent, _ = _run(["unavailable", "ok"], ClientRetries(SPEC, random.Random(1)),
                          stop_after=1)
    assert (tried.outcome, tried.attempts, tried.retries) == ("unavailable", 1, 1)


def test_a_single_attempt_without_a_retry_policy() -> None:
    tried, sent, _ = _run(["unavailable", "ok"], ClientRetries(None, random.Random(1)))
    assert (tried.outcome, tried.attempts, sent) == ("unavailable", 1, ["unavailable"])
