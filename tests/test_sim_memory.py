"""Memory flat in run length and linear in tenants (issue 15), with results unchanged:
the recorder's preallocated window arrays, the result cache's sweep of keys no lookup can
hit, and the workload's chunked pre-draws."""

import numpy as np
from sim_helpers import SCENARIOS

from labcore.facts import OUTCOMES
from labcore.scenario_file import load_scenario
from sim.kernel import Environment, Recorder, Streams
from sim.model.cache import ResultCache
from sim.model.workload import CHUNK, Workload


def test_windows_past_the_announced_capacity_give_the_same_arrays() -> None:
    arrays = []
    for capacity in (1, 64):  # 1: the arrays double four times during the run
        env = Environment()
        recorder = Recorder(env, 10.0, ["acme", "globex"], outcomes=OUTCOMES, windows=capacity)
        for t in range(95):
            env.run(until=t + 0.5)
            recorder.request(t % 2, 0.001 * (t + 1), t % len(OUTCOMES))
        env.run(until=95.0)
        recorder.close_window()
        arrays.append(recorder.arrays())
    assert arrays[0]["hist"].shape == (10, 2, 1000)
    for name in ("start", "hist", "outcomes", "latency_sum", "fail_hist", "fail_latency_sum"):
        assert arrays[0][name].dtype == arrays[1][name].dtype
        assert np.array_equal(arrays[0][name], arrays[1][name])
    assert int(arrays[0]["outcomes"].sum()) == 95
    # The last, partial window is kept (its requests, t = 90..94, all failed: outcomes 2..6).
    assert int(arrays[0]["fail_hist"][-1].sum()) == 5
    assert float(arrays[0]["fail_latency_sum"][-1]) > 0


def _cache(stale_horizon: float) -> tuple[Environment, ResultCache]:
    spec = load_scenario(SCENARIOS / "baseline.yaml").topology.cache  # ttl 5m, unbounded
    env = Environment()
    recorder = Recorder(env, 10.0, ["acme"], outcomes=OUTCOMES)
    return env, ResultCache(env, spec, 3, recorder, 10**9, stale_horizon)


def test_the_cache_forgets_only_keys_no_lookup_can_hit_again() -> None:
    env, cache = _cache(stale_horizon=60.0)
    reference: dict[int, float] = {}
    for i in range(200_000):  # a new key every 10 ms for 2,000 s, TTL 300 s
        now = i * 0.01
        cache.store(i, now)
        reference[i] = now + cache.ttl
    now = 199_999 * 0.01
    reachable = {k: e for k, e in reference.items() if e >= now - 60.0}
    assert len(reachable) == 36_001
    assert len(cache.expiry) <= 2 * len(reachable) + 1  # bounded by the keys alive
    assert len(cache.expiry) < len(reference) // 2
    for key, expiry in reachable.items():  # the stale window is intact
        assert cache.expiry[key] == expiry
    for key in range(0, 200_000, 997):  # every lookup as without the sweep
        assert cache.lookup(key, now) == (reference[key] > now)


def test_a_bounded_cache_is_never_swept() -> None:
    scenario = load_scenario(SCENARIOS / "baseline.yaml",
                             overrides=["topology.cache.max_keys_per_node=100000"])
    env = Environment()
    recorder = Recorder(env, 10.0, ["acme"], outcomes=OUTCOMES)
    cache = ResultCache(env, scenario.topology.cache, 3, recorder, 10**9)
    for i in range(10_000):
        cache.store(i, i * 1.0)  # most of them long expired
    assert len(cache.expiry) == 10_000  # expired keys hold capacity until evicted


def test_pre_drawn_gaps_are_the_same_draws_in_chunks() -> None:
    scenario = load_scenario(SCENARIOS / "baseline.yaml")
    env = Environment()
    workload = Workload(env, scenario, Streams(7), ["crm.accounts", "crm.contacts",
                                                    "tickets.tickets"], lambda r: None)
    stream = workload.streams[0]
    gaps = [stream.gap() for _ in range(3 * CHUNK)]
    # Never a whole block held: a chunk of Python floats, or compiled, one packed chunk.
    assert len(stream.gap_buffer) < CHUNK and len(stream.gap_chunk) <= CHUNK
    expected = Streams(7).numpy("workload.arrivals.acme").standard_exponential(4 * CHUNK)
    assert gaps == expected.tolist()[1:3 * CHUNK + 1]  # the first gap went to scheduling


class _Source:
    """A counter source: integer attributes the recorder reads and resets per window."""

    def __init__(self, names: list[str]) -> None:
        for name in names:
            setattr(self, name, 0)


def test_counters_as_rows_give_a_late_counter_zeros_before_it_appears() -> None:
    env = Environment()
    recorder = Recorder(env, 10.0, ["acme"], outcomes=OUTCOMES, windows=1)
    early = _Source([f"c{i}" for i in range(12)])  # more names than the first row holds
    recorder.add_counters("early", early, [f"c{i}" for i in range(12)])
    late = _Source(["x"])
    for t in range(5):
        if t == 3:
            recorder.add_counters("late", late, ["x"])
        early.c7, late.x = t + 1, 10 * t  # type: ignore[attr-defined]
        env.run(until=10.0 * (t + 1) + 1.0)  # past the boundary: window t sealed
    a = recorder.arrays()
    names = a["counter_names"]
    assert names == sorted([f"early.c{i}" for i in range(12)] + ["late.x"])
    assert a["counters"].shape == (5, 13) and a["counters"].dtype == np.int64
    assert a["counters"][:, names.index("early.c7")].tolist() == [1, 2, 3, 4, 5]
    assert a["counters"][:, names.index("late.x")].tolist() == [0, 0, 0, 30, 40]
    assert a["tiers"].shape == (5, 0, 7)


def test_the_timeout_fifo_holds_live_attempts_not_every_attempt_of_a_timeout() -> None:
    """One attempt hangs at t = 0 and holds the FIFO's head for the whole 30 s timeout,
    while 60,000 others end 10 ms after they start. The FIFO drops the ended ones as it
    goes (it used to hold all of them until the head's deadline), and the client's
    outcomes are what they are without that: the hung one times out at 30 s, every other
    one succeeds, and ``inflight`` lists exactly the live attempts in start order."""
    from labcore.scenario import Retries
    from sim.kernel import schedule
    from sim.model.client import Client
    from sim.model.request import OK, OUTCOME_INDEX, Request

    env = Environment()
    recorder = Recorder(env, 10.0, ["acme"], outcomes=OUTCOMES)
    client = Client(env, Retries(), 30.0, Streams(1), recorder)
    sent: list = []

    def enter(attempt) -> None:
        sent.append(attempt)
        if attempt.request.id:  # request 0 hangs: nothing ever answers it
            schedule(env.kernel, 0.01, lambda call: client.finish(call.job, OK), attempt)

    client.set_enter(enter)

    def arrive(call) -> None:
        client.send(Request(call.job, 0, 0, 0, 0, env.now))

    for i in range(60_001):
        schedule(env.kernel, i * 0.0005, arrive, i)
    longest = 0
    for t in range(1, 31):
        env.run(until=t - 0.5)
        held = len(client._pending) - client._head
        longest = max(longest, held)
        live = [a for a in sent if a.alive]
        assert client.inflight() == live  # the live attempts, in start order
        assert held <= 2 * len(live) + 1024
    env.run(until=31.0)
    recorder.close_window()
    outcomes = recorder.arrays()["outcomes"].sum(axis=(0, 1))
    assert int(outcomes[OUTCOME_INDEX["timeout"]]) == 1 and not sent[0].alive
    assert int(outcomes[OK]) == 60_000 and int(outcomes.sum()) == 60_001
    assert longest < 2_000  # not the 60,000 attempts of the hung one's timeout
