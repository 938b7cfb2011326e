"""The kernel's event queue: SimPy's order (time, then priority, then insertion), on
both of its representations (a heap of tuples as plain Python, a heap in packed arrays
compiled), and light events fired as SimPy fires its own."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import weakref

import pytest
from sim_helpers import ROOT

from sim import path_status
from sim.kernel import Environment
from sim.kernel.events import NATIVE, NORMAL, URGENT, Call, Kernel, schedule
from sim.kernel.station import Job, Station


class _SortedQueue:
    """The rule itself: every pop sorts what is queued on (time, priority, insertion)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, int, int, object]] = []
        self.eid = 0
        self.now = 0.0

    def push(self, t: float, priority: int, event: object) -> None:
        self.items.append((t, priority, self.eid, event))
        self.eid += 1

    def pop(self) -> object:
        self.items.sort(key=lambda item: item[:3])
        self.now, _, _, event = self.items.pop(0)
        return event


def _same_order_as_the_rule(seed: int, steps: int) -> int:
    """Drive the kernel and the rule with the same pushes (many ties in time and
    priority) and pops; return how many events were popped, all in the same order."""
    rng = random.Random(seed)
    kernel, rule = Kernel(), _SortedQueue()
    popped = 0
    for i in range(steps):
        if len(kernel) and rng.random() < 0.45:
            assert kernel.peek() == min(item[0] for item in rule.items)
            assert kernel.pop() == rule.pop() and kernel.now == rule.now
            popped += 1
        else:
            t = kernel.now + rng.choice([0.0, 0.0, 0.5, 1.0, round(rng.random() * 3.0, 1)])
            priority = rng.choice([URGENT, NORMAL, NORMAL])
            kernel.push(t, priority, i)
            rule.push(t, priority, i)
    while len(kernel):
        assert kernel.peek() == min(item[0] for item in rule.items)
        assert kernel.pop() == rule.pop() and kernel.now == rule.now
        popped += 1
    assert not rule.items and kernel.peek() == float("inf")
    return popped


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_queue_pops_in_simpys_order(seed: int) -> None:
    assert _same_order_as_the_rule(seed, 5000) > 2000


def test_the_other_representation_pops_in_simpys_order_too() -> None:
    """This process runs one representation of the queue (compiled or not); a fresh
    interpreter on the other path runs the same check."""
    if not path_status().compiled:
        pytest.skip("no compiled build: the plain-Python queue is the one tested above")
    assert NATIVE
    code = ("import sys; sys.path.insert(0, 'tests'); "
            "from sim.kernel.events import NATIVE; assert not NATIVE; "
            "import test_sim_kernel_queue as t; print(t._same_order_as_the_rule(4, 5000))")
    env = {**os.environ, "SIM_PURE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 2000


def test_an_unknown_priority_is_refused() -> None:
    kernel = Kernel()
    if NATIVE:  # the compiled heap folds the priority into its key
        with pytest.raises(ValueError, match="priority 2"):
            kernel.push(1.0, 2, None)
    else:  # tuples order any integer priority as SimPy does
        kernel.push(1.0, 2, "late")
        kernel.push(1.0, NORMAL, "early")
        assert [kernel.pop(), kernel.pop()] == ["early", "late"]


class _Weak:
    """An event that can be referenced weakly."""


def test_the_queue_holds_no_event_it_has_popped() -> None:
    """Compiled, popped entries' slots are kept to be reused, but not the events they
    held; reused, they order new events as fresh ones would."""
    kernel = Kernel()
    events = [_Weak() for _ in range(200)]
    refs = [weakref.ref(event) for event in events]
    for i, event in enumerate(events):
        kernel.push(float(i % 7), NORMAL, event)
    popped = [kernel.pop() for _ in range(200)]
    assert popped == [events[i] for t in range(7) for i in range(t, 200, 7)]
    del events, popped, event
    assert not len(kernel) and all(ref() is None for ref in refs)
    for i in range(300):  # more than the entries kept: reused ones and new ones
        kernel.push(kernel.now + (i * 7919 % 13) / 4.0, URGENT if i % 3 else NORMAL, i)
    order = [(kernel.pop(), kernel.now) for _ in range(300)]
    assert [t for _, t in order] == sorted(t for _, t in order)
    assert sorted(i for i, _ in order) == list(range(300))
    job = Job(0.0)  # a light event (no weak references compiled): count its references
    held = sys.getrefcount(job)
    kernel.push_job(1.0, job, [])
    assert sys.getrefcount(job) == held + 1 and kernel.pop() is job
    assert sys.getrefcount(job) == held
    env = Environment()  # and fired by the run loop
    env.kernel.push_job(1.0, job, [lambda j: None])
    env.run(until=2.0)
    assert sys.getrefcount(job) == held and job.callbacks is None


def test_a_handled_light_event_keeps_simpys_order_and_may_schedule_itself_again() -> None:
    """A job whose station handles its completion (``Handler.on_light``, no callback
    list) fires in insertion order among SimPy's events due at the same time, once per
    scheduling: the kernel clears its handler before the call, so a second phase can
    schedule it again; nothing is left holding it when it is done."""
    env = Environment()
    fired: list[tuple[object, ...]] = []
    phases = iter([0.5, None])

    def serve(job: Job) -> float:
        fired.append(("serve", env.now))
        return 1.0

    def after(job: Job) -> float | None:
        fired.append(("after", env.now, job.handler))
        return next(phases)

    env.timeout(1.0).callbacks.append(  # type: ignore[union-attr]
        lambda _e: fired.append(("timeout", env.now)))
    station = Station(env, "s", 1, serve, after)
    job = Job(0.0)
    held = sys.getrefcount(job)
    assert station.submit(job) and job.handler is station
    env.timeout(1.0).callbacks.append(  # type: ignore[union-attr]
        lambda _e: fired.append(("timeout-after", env.now)))
    env.run(until=2.0)
    assert fired == [("serve", 0.0), ("timeout", 1.0), ("after", 1.0, None),
                     ("timeout-after", 1.0), ("after", 1.5, None)]
    assert station.busy == 0 and job.handler is None and job.callbacks is None
    assert sys.getrefcount(job) == held


def test_light_events_and_simpys_share_one_order() -> None:
    """A light call, a job scheduled as its own event and SimPy timeouts, all due at the
    same time, fire in the order they were scheduled; each light event once."""
    env = Environment()
    kernel = env.kernel
    fired: list[str] = []

    def proc():  # type: ignore[no-untyped-def]
        yield env.timeout(1.0)
        fired.append("timeout-a")

    env.process(proc())  # its start is urgent, at 0
    job = Job(0.0)
    kernel.push_job(1.0, job, [lambda j: fired.append(f"job:{j is job}")])
    call = schedule(kernel, 1.0, lambda c: fired.append(f"call:{c.job}"), "payload")
    assert isinstance(call, Call) and call.job == "payload"
    env.timeout(1.0).callbacks.append(lambda _e: fired.append("timeout-b"))  # type: ignore[union-attr]
    env.run(until=2.0)
    # the process's timeout was scheduled when it started, at 0 but after the others
    assert fired == ["job:True", "call:payload", "timeout-b", "timeout-a"]
    assert job.callbacks is None and env.now == 2.0


def test_a_station_serves_jobs_first_in_first_out_on_the_kernels_clock() -> None:
    env = Environment()
    jobs = [Job(0.0) for _ in range(5)]  # a compiled Job has no interpreted subclasses
    done: list[tuple[float, int]] = []
    station = Station(env, "s", 2, serve=lambda job: 1.0,
                      after=lambda job: done.append((env.now, jobs.index(job))))  # type: ignore[func-returns-value]
    for job in jobs:
        assert station.submit(job)
    env.run(until=10.0)
    assert done == [(1.0, 0), (1.0, 1), (2.0, 2), (2.0, 3), (3.0, 4)]
    assert station.wait_sum == 1.0 + 1.0 + 2.0 and station.busy == 0
