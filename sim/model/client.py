"""Clients: per-attempt timeouts and retries with backoff and an optional retry budget.

Timeouts cost no event per request: attempts are kept in a FIFO in start order, which
is deadline order because every attempt has the same timeout, and a single timer is
armed for the oldest attempt still alive.

The FIFO is a list and the index of its head. An attempt that ends before its deadline
stays in it until the head passes it, which, behind an older live attempt, can be a
whole timeout later: at 50,000 requests a second and a 5 s timeout, 236,386 attempts
(and their requests) were held where 4,847 were live. So when the list has
doubled since it was last compacted, the attempts that have ended are dropped from it.
Only ended attempts go, and the live ones keep their order, so the timer, the timeouts
and :meth:`Client.inflight` are exactly as before.

Where an attempt goes next is a field, not a method: ``enter`` (the gateway's entry),
``release`` (the gateway's slot bookkeeping) and ``observer`` are set by the system's
wiring and changed afterwards only through :meth:`Client.set_enter`,
:meth:`Client.set_release` and :meth:`Client.set_observer` (a failover's DNS shift, a
canary's analysis), each returning the hop it replaces. While ``enter`` is the gateway's
default entry (:meth:`Gateway._accept_random`), the client calls it directly: compiled, a
call through the field is a generic Python call, once an attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

from labcore.facts import OUTCOMES
from labcore.retries import Backoff, RetryBudget, push_policy  # shared with the real loads
from labcore.scenario import Retries
from labcore.scenario.topology import BackoffStrategy

from ..kernel import Recorder, Streams, schedule
from ..kernel.events import Call, Kernel
from .gateway import Gateway
from .request import OK, OUTCOME_INDEX, TIMEOUT, Attempt, Request

if TYPE_CHECKING:
    from ..kernel.environment import Environment

__all__ = ["Client", "Backoff", "RetryBudget"]

#: The FIFO is compacted when it reaches twice its size after the last compaction, and
#: never below this length (so that a small FIFO is not compacted over and over).
_COMPACT_MIN: Final = 1024


class Client:
    """Sends each request through ``enter`` and turns attempt outcomes into results."""

    # The retry budget's state, which ``budget`` reads and sets.
    _budgeted: bool  # a budget applies (its ratio is not None)
    _ratio: float
    _reserve: float
    _tokens: float

    def __init__(self, env: "Environment", spec: Retries, timeout: float,
                 streams: Streams, recorder: Recorder) -> None:
        self.env, self.timeout, self.recorder = env, timeout, recorder
        self.kernel: Kernel = env.kernel
        self.max_attempts = spec.max_attempts
        self.retry_on = frozenset(OUTCOME_INDEX[o] for o in spec.on)
        self.backoff = Backoff(spec, streams.get("client.backoff"))
        self.budget = RetryBudget(spec.budget)  # held in the fields below (``budget``)
        self.enter: Callable[[Attempt], None] = lambda attempt: None  # wired by the system
        self._gateway: Gateway | None = None  # while ``enter`` is its _accept_random
        self.release: Callable[[Attempt], None] = lambda attempt: None
        #: Sees every live attempt's outcome (a canary's analysis); ``None``: nobody.
        self.observer: Callable[[Attempt, int], None] | None = None
        #: The timeout FIFO: attempts in start order from ``_head`` on (see the module's
        #: docstring); compacted when its length reaches ``_compact_at``.
        self._pending: list[Attempt] = []
        self._head = 0
        self._compact_at = _COMPACT_MIN
        self._armed = False
        self._retry_callbacks = [self.send]
        self.trace = recorder.trace is not None
        # Counters, read and reset by the recorder at each window boundary.
        self.requests = self.attempts = self.retries = self.retries_denied = self.wasted = 0
        recorder.add_counters("client", self, ("requests", "attempts", "retries",
                                               "retries_denied", "wasted"))

    # -- the retry budget ------------------------------------------------------------------

    @property
    def budget(self) -> RetryBudget:
        """The retry budget as it stands: labcore's :class:`RetryBudget` (a copy; set this
        attribute to change it). The client holds its state in native fields, because
        every request earns its share on the hot path, where reading a Python object's
        attributes cost compiled code a tenth of its time."""
        budget = RetryBudget(self._ratio if self._budgeted else None, self._reserve)
        budget.tokens = self._tokens
        return budget

    @budget.setter
    def budget(self, budget: RetryBudget) -> None:
        self._budgeted = budget.ratio is not None
        self._ratio = budget.ratio if budget.ratio is not None else 0.0
        self._reserve = budget.reserve
        self._tokens = budget.tokens

    # -- wiring: the next hops (see the module docstring) ---------------------------------

    def set_enter(self, enter: Callable[[Attempt], None]) -> Callable[[Attempt], None]:
        """Send every new attempt to ``enter``; returns the entry it replaces."""
        previous, self.enter = self.enter, enter
        owner = getattr(enter, "__self__", None)
        self._gateway = (owner if isinstance(owner, Gateway) and enter == owner._accept_random
                         else None)
        return previous

    def set_release(self, release: Callable[[Attempt], None]) -> Callable[[Attempt], None]:
        """Hand every ended attempt holding a gateway slot to ``release``."""
        previous, self.release = self.release, release
        return previous

    def set_observer(self, observer: Callable[[Attempt, int], None] | None
                     ) -> Callable[[Attempt, int], None] | None:
        """Show every live attempt's outcome to ``observer`` (``None``: nobody)."""
        previous, self.observer = self.observer, observer
        return previous

    def set_policy(self, budget: float | None, backoff: BackoffStrategy | None,
                   max_attempts: int | None) -> None:
        """A config push (a mitigation): a new retry budget, backoff or attempt limit."""
        push_policy(self, budget, backoff, max_attempts)

    def send(self, request: Request) -> None:
        """A new client request, or a retry of one: a new attempt through the stack."""
        if not request.attempts:  # a new request
            self.requests += 1
            if self._budgeted:  # it earns the budget its share (RetryBudget.earn)
                tokens = self._tokens + self._ratio
                self._tokens = tokens if tokens < self._reserve else self._reserve
        request.attempts += 1
        attempt = Attempt(request, -1, self.kernel.now)
        self.attempts += 1
        if self.trace:
            self.recorder.log(request.id, "attempt")
        pending = self._pending
        pending.append(attempt)
        if len(pending) >= self._compact_at:
            self._compact()
        if not self._armed:
            self._arm()
        gateway = self._gateway
        if gateway is not None:
            gateway._accept_random(attempt)
        else:
            self.enter(attempt)

    def finish(self, attempt: Attempt, outcome: int) -> None:
        """An attempt ended; outcomes of attempts the client gave up on are wasted work."""
        if not attempt.alive:
            self.wasted += 1
            return
        if self.observer is not None:
            self.observer(attempt, outcome)
        attempt.alive = False
        if attempt.slot:
            self.release(attempt)
        request = attempt.request
        if outcome != OK and outcome in self.retry_on and request.attempts < self.max_attempts:
            if not self._budgeted or self._tokens >= 1.0:  # RetryBudget.spend
                if self._budgeted:
                    self._tokens -= 1.0
                self.retries += 1
                delay = self.backoff.delay(request, request.attempts)
                self.kernel.push_job(delay, request, self._retry_callbacks)
                return
            self.retries_denied += 1
        if self.trace:
            self.recorder.log(request.id, "ok" if outcome == OK else OUTCOMES[outcome])
        self.recorder.request(request.tenant, self.kernel.now - request.t0, outcome)

    def inflight(self) -> list[Attempt]:
        """Every attempt still alive (they are all in the timeout FIFO), in start order."""
        pending = self._pending
        return [pending[i] for i in range(self._head, len(pending)) if pending[i].alive]

    def _compact(self) -> None:
        """Drop the attempts that have ended from the FIFO (the live keep their order)."""
        self._pending = self.inflight()
        self._head = 0
        self._compact_at = max(_COMPACT_MIN, 2 * len(self._pending))

    def _arm(self) -> None:
        pending, head = self._pending, self._head
        while head < len(pending) and not pending[head].alive:
            head += 1
        self._head = head
        if head < len(pending):
            self._armed = True
            delay = pending[head].start + self.timeout - self.kernel.now
            schedule(self.kernel, max(0.0, delay), self._expire, None)
        else:
            self._armed = False
            if head:  # empty: start again at the front
                pending.clear()
                self._head = 0

    def _expire(self, call: Call) -> None:
        deadline = self.kernel.now - self.timeout + 1e-12
        # The FIFO is read afresh each time: a timeout's outcome may send a new attempt,
        # which may compact the FIFO (its live attempts keep their order).
        while self._head < len(self._pending):
            attempt = self._pending[self._head]
            if attempt.alive and attempt.start > deadline:
                break
            self._head += 1
            if attempt.alive:
                self.finish(attempt, TIMEOUT)
        self._arm()
