"""A station that keeps its dead queued jobs as queueing times alone (``stand_in``) serves,
counts, waits and drops exactly as one that keeps the jobs themselves."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sim.kernel import Environment
from sim.kernel.station import DeadRun, Job, Station


class _Twin:
    """One of two stations run side by side on the same script: what it served, in order,
    with the clock, the job's queueing time and whether it was alive."""

    def __init__(self, env: Environment, seed: int, compact: bool, drop_expired: bool,
                 queue_limit: int | None) -> None:
        self.env = env
        self.rng = random.Random(seed)  # service times: drawn in serving order
        self.served: list[tuple[float, float, bool]] = []
        self.jobs: list[Job] = []
        self.peak_entries = 0
        self.saw_runs = False
        self.before_failure = (0, 0)  # jobs queued, queue entries
        self.lost = 0
        stand_in = self._stand_in if compact else None
        self.station = Station(env, "s", 3, serve=self._serve, after=self._after,
                               queue_limit=queue_limit, drop_expired=drop_expired,
                               stand_in=stand_in)

    @staticmethod
    def _stand_in(t_enq: float) -> Job:
        job = Job(t_enq)
        job.alive = False
        return job

    def _serve(self, job: Job) -> float:
        return self.rng.expovariate(1.0)

    def _after(self, job: Job) -> float | None:
        self.served.append((self.env.now, job.t_enq, job.alive))
        if job.alive and self.rng.random() < 0.2:  # a second phase, holding the server
            return self.rng.expovariate(4.0)
        return None

    def submit(self) -> None:
        job = Job(0.0)
        self.jobs.append(job)
        self.station.submit(job)
        queue = self.station.queue
        self.peak_entries = max(self.peak_entries, len(queue))
        self.saw_runs = self.saw_runs or any(type(j) is DeadRun for j in queue)

    def stats(self) -> dict[str, Any]:
        s = self.station
        s.sample_areas()
        return {"started": s.started, "waited": s.waited, "wait_sum": s.wait_sum,
                "rejected": s.rejected, "dropped": s.dropped, "busy": s.busy,
                "busy_area": s.busy_area, "capacity_area": s.capacity_area,
                "queued": s.queued(), "served": len(self.served)}


def _script(env: Environment, twins: tuple[_Twin, _Twin], seed: int, timeout: float) -> Any:
    """Overload (arrivals 6/s, service under 3/s): jobs die ``timeout`` after they arrive,
    and three in ten at a random moment before (so dead and live jobs interleave); a
    resize down and back up, a failure and a restore; every step compares the two
    stations' queued counts."""
    rng = random.Random(seed)
    deadlines: list[tuple[float, int]] = []
    for i in range(6000):
        yield env.timeout(rng.expovariate(6.0))
        for twin in twins:
            twin.submit()
        life = rng.uniform(0, timeout) if rng.random() < 0.3 else timeout
        deadlines.append((env.now + life, i))
        deadlines.sort()
        while deadlines and deadlines[0][0] <= env.now:
            _, k = deadlines.pop(0)
            for twin in twins:
                twin.jobs[k].alive = False
        if i == 2500:
            for twin in twins:
                twin.station.resize(1)
        if i == 2600:
            for twin in twins:
                twin.station.resize(3)
        if i == 4999:
            for twin in twins:
                twin.before_failure = (twin.station.queued(), len(twin.station.queue))
        if i == 5000:
            for twin in twins:
                twin.lost = twin.station.fail()
        if i == 5100:
            for twin in twins:
                twin.station.restore(3)
        assert twins[0].station.queued() == len(twins[0].station.queue)
        assert twins[1].station.queued() == twins[0].station.queued()


@pytest.mark.parametrize("timeout", [30.0, 200.0])
@pytest.mark.parametrize("drop_expired", [False, True])
@pytest.mark.parametrize("queue_limit", [None, 1800])
def test_dead_jobs_kept_as_times_are_served_as_the_jobs_were(
        timeout: float, drop_expired: bool, queue_limit: int | None) -> None:
    env = Environment()
    plain = _Twin(env, 7, False, drop_expired, queue_limit)
    compact = _Twin(env, 7, True, drop_expired, queue_limit)
    env.process(_script(env, (plain, compact), 11, timeout))
    env.run(until=3000.0)
    assert plain.served == compact.served and len(plain.served) > 3000
    assert plain.stats() == compact.stats()
    assert plain.lost == compact.lost > 100
    # Dead jobs were queued, and served (wasted work) or dropped.
    if drop_expired:
        assert plain.station.dropped > 1000
    else:
        assert sum(not alive for _, _, alive in plain.served) > 1000
    if queue_limit is not None:  # refused beyond the 100 arrivals while it was down
        assert (plain.station.rejected > 100) == (plain.peak_entries >= queue_limit)
    # The compacted queue is compacted once it reaches 1,024 entries, and only then.
    assert compact.saw_runs == (plain.peak_entries >= 1024)
    queued, entries = compact.before_failure
    assert queued == plain.before_failure[0] == plain.before_failure[1]
    if timeout == 30.0 and not drop_expired and queue_limit is None:
        assert entries < queued / 3  # most of the queue was dead, kept as 8-byte times
