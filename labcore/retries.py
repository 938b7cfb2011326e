"""Client retries: the backoff between attempts and the retry budget, one implementation.

The simulator's client (:mod:`sim.model.client`), the chaos extension's background load
and the Locust users all retry a whole query as the scenario's
``topology.gateway.retries`` says (the real runners through :func:`attempt` and
:class:`ClientRetries`): up to
``max_attempts`` attempts, on the outcomes in ``on``, after a backoff (``none``,
``exponential``, ``full_jitter``, ``equal_jitter``, ``decorrelated_jitter``, capped at
``cap``), and at most ``budget`` retries per first attempt (a token bucket).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .scenario import Retries, RetryPolicy, Scenario
from .scenario.topology import BackoffStrategy

__all__ = ["Backoff", "ClientRetries", "PolicyPush", "RetryBudget", "RetryState", "Tried",
           "attempt", "longest_request", "policy_pushes", "push_policy"]

T = TypeVar("T")


def longest_request(timeout: float, spec: Retries | None) -> float:
    """The longest one query can keep its client busy: every attempt runs into the client's
    ``timeout`` and every backoff is the largest (``cap``). An open-loop load generator
    sizes its concurrency by Little's law on this (rate x longest request), so that
    overload shows as latency and errors, never as a generator that falls behind its
    schedule and catches up later."""
    if spec is None:
        return timeout
    return spec.max_attempts * timeout + (spec.max_attempts - 1) * float(spec.cap)


class RetryState(Protocol):
    """What a backoff remembers of one request: its last delay (decorrelated jitter)."""

    backoff: float


class Backoff:
    """Delay before retry ``n`` (1-based) under one of the classic strategies."""

    def __init__(self, spec: Retries, rng: random.Random) -> None:
        self.strategy, self.base, self.cap = spec.backoff, spec.base, spec.cap
        self.rng = rng

    def delay(self, request: RetryState, n: int) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** (n - 1))
        strategy = self.strategy
        if strategy == "none":
            return 0.0
        if strategy == "exponential":
            return ceiling
        if strategy == "full_jitter":
            return self.rng.uniform(0.0, ceiling)
        if strategy == "equal_jitter":
            return ceiling / 2.0 + self.rng.uniform(0.0, ceiling / 2.0)
        previous = request.backoff or self.base  # decorrelated jitter
        request.backoff = min(self.cap, self.rng.uniform(self.base, previous * 3.0))
        return request.backoff


class RetryBudget:
    """Retries may not exceed ``ratio`` of first attempts: every first attempt earns
    ``ratio`` of a token (up to ``reserve`` saved; the simulator's client adds it on its
    hot path, :meth:`earn` elsewhere), every retry spends one."""

    def __init__(self, ratio: float | None, reserve: float = 100.0) -> None:
        self.ratio, self.reserve = ratio, reserve
        self.tokens = reserve if ratio is not None else 0.0

    def earn(self) -> None:
        """A first attempt: its share of a token."""
        if self.ratio is not None:
            self.tokens = min(self.reserve, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.ratio is None:
            return True
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Policy(Protocol):
    """A client whose retries a config push changes (the simulator's and the real loads')."""

    budget: RetryBudget
    backoff: Backoff
    max_attempts: int


def push_policy(client: _Policy, budget: float | None, backoff: BackoffStrategy | None,
                max_attempts: int | None) -> None:
    """A client config push (the ``retry_policy`` mitigation): a new retry budget (full,
    as a fresh client's), backoff strategy or attempt limit; None keeps the old one."""
    if budget is not None:
        client.budget = RetryBudget(budget)
    if backoff is not None:
        client.backoff.strategy = backoff
    if max_attempts is not None:
        client.max_attempts = max_attempts


@dataclass(frozen=True)
class PolicyPush:
    """A ``retry_policy`` mitigation on the run's clock: at ``at`` seconds, the push."""

    at: float
    budget: float | None
    backoff: BackoffStrategy | None
    max_attempts: int | None


def policy_pushes(scenario: Scenario) -> list[PolicyPush]:
    """The scenario's client config pushes in time order, as the simulator's
    ``retry_policy`` mitigation makes them (an operator's push after a fault is made
    whether or not a real run injected that fault: it is the clients' timeline)."""
    pushes = [PolicyPush(m.start(scenario.faults), m.budget, m.backoff, m.max_attempts)
              for m in scenario.mitigations if isinstance(m, RetryPolicy)]
    return sorted(pushes, key=lambda p: p.at)


class ClientRetries:
    """A load client's retry policy (a real runner's, thread- or greenlet-shared): which
    outcomes, how many attempts, the backoff and one retry budget for all its senders."""

    def __init__(self, spec: Retries | None, rng: random.Random) -> None:
        spec = spec or Retries()  # the default: a single attempt
        self.max_attempts, self.on = spec.max_attempts, frozenset(spec.on)
        self.backoff = Backoff(spec, rng)
        self.budget = RetryBudget(spec.budget)
        self._lock = threading.Lock()

    def first(self) -> None:
        """A new request earns the budget its share."""
        with self._lock:
            self.budget.earn()

    def push(self, push: PolicyPush) -> None:
        """A config push reaches this client (:func:`push_policy`)."""
        with self._lock:
            push_policy(self, push.budget, push.backoff, push.max_attempts)

    def wanted(self, outcome: str, attempts: int) -> bool:
        return outcome != "ok" and outcome in self.on and attempts < self.max_attempts

    def spend(self) -> bool:
        with self._lock:
            return self.budget.spend()


@dataclass
class Tried(Generic[T]):
    """A request's attempts: the last answer, its outcome, and what the policy did."""

    answer: T
    outcome: str
    attempts: int
    retries: int = 0
    denied: int = 0


@dataclass
class _Request:
    backoff: float = 0.0  # the last backoff (decorrelated jitter remembers it)


def attempt(send: Callable[[], T], outcome_of: Callable[[T], str], policy: ClientRetries,
            wait: Callable[[float], bool]) -> Tried[T]:
    """Send until an outcome the policy does not retry, the attempts run out or the budget
    refuses; ``wait(delay)`` sleeps the backoff and returns True to stop (the load ends)."""
    policy.first()
    state, tried = _Request(), None
    attempts = retries = denied = 0
    while True:
        attempts += 1
        answer = send()
        outcome = outcome_of(answer)
        tried = Tried(answer, outcome, attempts, retries, denied)
        if not policy.wanted(outcome, attempts):
            return tried
        if not policy.spend():
            tried.denied = 1
            return tried
        retries += 1
        if wait(policy.backoff.delay(state, attempts)):
            tried.retries = retries
            return tried  # stopping: the last answer stands
