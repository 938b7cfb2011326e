"""Closed-loop users (issue 14): think, send, wait for the answer, think again.

A closed-loop tenant has ``users × in_flight`` sessions. Each sends a query (its user's
index, its target and key drawn from the tenant's own query stream as open-loop queries
are), waits for the request's final outcome (after the client's retries) or, with
``patience``, at most that long, then thinks for a draw of ``think_time`` (stream
``users.<tenant>.think``) and sends the next. Sessions start with a think, so they are
not synchronised at time 0. The load such a tenant offers falls as the system slows
down: the classic closed network (mean value analysis applies).

The client tells the sessions of a request's end through :class:`NotifyingClient`,
used only when a scenario has closed-loop tenants (the open-loop client is untouched).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generator

from labcore.scenario import Retries, Scenario

from ..kernel import Recorder, Streams
from .client import Client
from .request import Attempt, Request

if TYPE_CHECKING:
    import simpy

    from ..kernel.environment import Environment
    from .workload import Workload

__all__ = ["ClosedLoopUsers", "NotifyingClient"]


class NotifyingClient(Client):
    """A client that calls ``done(request, outcome)`` when a request ends for good."""

    def __init__(self, env: "Environment", spec: Retries, timeout: float,
                 streams: Streams, recorder: Recorder) -> None:
        super().__init__(env, spec, timeout, streams, recorder)
        self.done: Callable[[Request, int], None] = lambda request, outcome: None

    def set_done(self, done: Callable[[Request, int], None]) -> None:
        """Tell ``done`` of every request's final outcome (the closed-loop sessions)."""
        self.done = done

    def finish(self, attempt: Attempt, outcome: int) -> None:
        if not attempt.alive:
            super().finish(attempt, outcome)
            return
        retries = self.retries
        super().finish(attempt, outcome)
        if self.retries == retries:  # not retried: the request's final outcome
            self.done(attempt.request, outcome)


class ClosedLoopUsers:
    """The sessions of every closed-loop tenant of the scenario."""

    def __init__(self, env: "Environment", scenario: Scenario, streams: Streams,
                 workload: "Workload", client: NotifyingClient, recorder: Recorder) -> None:
        self.env, self.workload = env, workload
        self.waiting: dict[int, "simpy.Event"] = {}  # request id → its session's wake-up
        self.abandoned = 0
        recorder.add_counters("users", self, ("abandoned",))
        client.set_done(self._done)
        for index, (name, tenant) in enumerate(scenario.workload.tenants.items()):
            spec = tenant.closed_loop
            if spec is None:
                continue
            think = spec.think_time.sampler(streams.numpy(f"users.{name}.think"))
            for user in range(tenant.users):
                for _ in range(spec.in_flight):
                    env.process(self._session(index, user, think, spec.patience))

    def _session(self, tenant: int, user: int, think: Callable[[], float],
                 patience: float | None) -> Generator["simpy.Event", Any, None]:
        env, workload = self.env, self.workload
        ts = workload.streams[tenant]
        while True:
            yield env.timeout(think())
            _, target, key = ts.next_query()
            workload.next_id += 1
            request = Request(workload.next_id, tenant, user, target, key, env.now)
            answered = self.waiting[request.id] = env.event()
            workload.send(request)
            if request.id not in self.waiting:
                continue  # ended at once (refused at admission)
            if patience is None:
                yield answered
            else:
                result = yield answered | env.timeout(patience)
                if answered not in result:
                    self.abandoned += 1
                    self.waiting.pop(request.id, None)

    def _done(self, request: Request, outcome: int) -> None:
        event = self.waiting.pop(request.id, None)
        if event is not None:
            event.succeed()
