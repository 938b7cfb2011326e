"""Scale points for ``python -m sim bench``: how time and memory grow with size.

A scale point is the baseline scenario grown to a size: a total request rate spread
evenly over a number of tenants, for a simulated duration, with the pools and the
providers' app-wide rate limits grown in proportion to the rate (so that the point
measures the simulator at a size, not an overloaded system). Each point runs in a
child process of its own, so that its peak resident memory is its own; the child
reports the seconds of the run and of the metrics step (:func:`compute_metrics`).
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from labcore.metrics import compute_metrics
from labcore.scenario import Scenario
from labcore.scenario_file import read_scenario

__all__ = ["POINTS", "QUICK_POINTS", "ScalePoint", "measure", "measure_here", "peak_mb",
           "run_segments", "scaled"]

BASELINE = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.yaml"
_MIXES = (  # the baseline's four mixes, dealt round-robin to the tenants
    {"crm.accounts": "40%", "crm.contacts": "30%", "tickets.tickets": "30%"},
    {"crm.accounts": "50%", "tickets.tickets": "50%"},
    {"crm.contacts": "60%", "tickets.tickets": "40%"},
    {"crm.accounts": "100%"},
)


@dataclass(frozen=True)
class ScalePoint:
    """A size: ``rate`` requests per second over ``tenants`` tenants for ``duration``."""

    name: str
    rate: float
    tenants: int
    duration: str


#: The issue's table: a long run, many tenants, production rate.
POINTS = (
    ScalePoint("1 h at 2,000 req/s", 2000.0, 4, "1h"),
    ScalePoint("1,000 tenants, 10 min", 1000.0, 1000, "10m"),
    ScalePoint("50,000 req/s, 500 tenants, 2 min", 50000.0, 500, "2m"),
)
#: The same code path in seconds (``--quick``): for tests, not for figures.
QUICK_POINTS = (
    ScalePoint("quick: 20 s at 200 req/s", 200.0, 4, "20s"),
    ScalePoint("quick: 50 tenants, 20 s", 100.0, 50, "20s"),
)
#: Memory in run length: the same traffic run short and long; the long run's peak over
#: the short one's is the issue's bar (within 10%).
LENGTH_POINTS = (
    ScalePoint("10 min at 2,000 req/s", 2000.0, 4, "10m"),
    ScalePoint("4 h at 2,000 req/s", 2000.0, 4, "4h"),
)
QUICK_LENGTH_POINTS = (
    ScalePoint("quick: 10 s at 200 req/s", 200.0, 4, "10s"),
    ScalePoint("quick: 40 s at 200 req/s", 200.0, 4, "40s"),
)


def scaled(point: ScalePoint, base: Path = BASELINE) -> Scenario:
    """The baseline grown to ``point``: tenants, rate, pools and app-wide rate limits."""
    data: dict[str, Any] = read_scenario(base, overrides=[
        f"run.duration={point.duration}", "run.warmup=0", "faults=[]"]).data
    factor = point.rate / 1000.0  # the baseline's 1,000 req/s
    width = len(str(point.tenants - 1))
    data["workload"]["tenants"] = {
        f"t{i:0{width}d}": {"rate": f"{point.rate / point.tenants:g}/s", "users": 10,
                            "mix": _MIXES[i % len(_MIXES)]}
        for i in range(point.tenants)}
    topo = data["topology"]
    for tier in ("engine", "connectors"):
        topo[tier]["workers_per_zone"] = max(1, math.ceil(topo[tier]["workers_per_zone"]
                                                          * factor))
    for provider in topo["providers"].values():
        limit = provider["rate_limit"]
        limit["app"] = f"{float(str(limit['app']).split('/')[0]) * factor:g}/s"
    return Scenario.model_validate(data, context={"base_dir": base.parent})


def measure_here(point: ScalePoint) -> dict[str, Any]:
    """Run ``point`` in this process: seconds, requests and peak RSS (MB) so far."""
    from .run import simulate

    scenario = scaled(point)
    started = time.process_time()
    result = simulate(scenario)
    run_seconds = time.process_time() - started
    started = time.process_time()
    compute_metrics(result)
    metrics_seconds = time.process_time() - started
    return {**asdict(point), "simulated_seconds": scenario.run.duration,
            "requests": result.requests, "run_seconds": run_seconds,
            "metrics_seconds": metrics_seconds, "peak_mb": peak_mb()}


def run_segments(point: ScalePoint, segment: float) -> Iterator[tuple[float, float, int]]:
    """Run ``point`` for its whole duration in this process, ``segment`` simulated seconds
    at a time; after each, yield the time reached, the segment's CPU seconds and the
    events queued. The model is the one :func:`measure_here` runs, without the metrics."""
    from .run import build

    scenario = scaled(point)
    env, _, _ = build(scenario, scenario.run.seed)
    t, until = 0.0, scenario.run.duration
    while t < until:
        t = min(t + segment, until)
        started = time.process_time()
        env.run(until=t)
        yield t, time.process_time() - started, len(env.kernel)


def peak_mb() -> float:
    """This process's peak resident set size, MB. Linux's ``VmHWM`` is this program's own:
    ``ru_maxrss`` of a child also counts its parent's size when it was forked."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def measure(point: ScalePoint) -> dict[str, Any]:
    """Run ``point`` in a child process of its own (its peak memory is its own)."""
    code = ("import json, sys\nfrom sim.scale import ScalePoint, measure_here\n"
            "print(json.dumps(measure_here(ScalePoint(**json.loads(sys.argv[1])))))\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(asdict(point))],
                          check=True, capture_output=True, text=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
