"""labcore.retries: the real runners' attempt loop with the simulator's backoff and budget."""

from __future__ import annotations

import random
from pathlib import Path

from labcore.retries import (
    Backoff,
    ClientRetries,
    PolicyPush,
    Tried,
    attempt,
    policy_pushes,
)
from labcore.scenario import Retries

REPO = Path(__file__).resolve().parents[1]
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


def test_a_config_push_changes_a_real_client_as_the_simulators() -> None:
    """retry_storm_mitigated's push (budget 10%, full jitter) on the client the real loads
    share, and on the simulator's: the same fields, the budget starting full."""
    from labcore.facts import OUTCOMES
    from sim import load_scenario
    from sim.kernel import Environment, Recorder, Streams
    from sim.model.client import Client

    scenario = load_scenario(REPO / "scenarios" / "retry_storm_mitigated.yaml")
    (push,) = policy_pushes(scenario)
    assert push == PolicyPush(480.0, 0.1, "full_jitter", None)  # fault at 4m + 4m operator
    assert policy_pushes(load_scenario(REPO / "scenarios" / "retry_storm.yaml")) == []
    spec = scenario.topology.gateway.retries
    real = ClientRetries(spec, random.Random(1))
    assert (real.budget.ratio, real.backoff.strategy) == (None, "none")  # the storm's client
    real.push(push)
    env = Environment()  # a client built as the simulator builds it, never run
    simulated = Client(env, spec, scenario.topology.gateway.timeout, Streams(1),
                       Recorder(env, scenario.run.window, list(scenario.workload.tenants),
                                outcomes=OUTCOMES))
    simulated.backoff = Backoff(spec, random.Random(1))
    simulated.set_policy(push.budget, push.backoff, push.max_attempts)
    for client in (real, simulated):
        assert (client.budget.ratio, client.budget.tokens) == (0.1, client.budget.reserve)
        assert (client.backoff.strategy, client.max_attempts) == ("full_jitter",
                                                                   spec.max_attempts)
    # a retry once the budget is spent is refused, as the simulator's client refuses it
    real.budget.tokens = 0.0
    tried, _, _ = _run(["unavailable", "ok"], real)
    assert (tried.attempts, tried.denied) == (1, 1)
