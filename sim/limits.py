"""What is checked before any simulation starts, so that a run never fails late.

A run that cannot finish (a duration of 10^9 hours), cannot fit (100,000 replications
of a 20-minute scenario), cannot be written (``--out`` names a file or an unwritable
place) or needs an extra that is not installed is refused with exit 2 and a message
naming what to change, before the first simulated second. ``--jobs`` above the machine's
cores is capped with a warning: more workers than cores only add memory.

Every refusal is a :class:`~sim.scenario_file.ScenarioError` (the CLI's exit 2).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from labcore.facts import N_BINS, OUTCOMES
from labcore.scenario import Scenario
from labcore.scenario_file import ScenarioError, ScenarioFile

from .humanize import human_duration

__all__ = [
    "EXTRAS",
    "MAX_DURATION",
    "MAX_WINDOWS",
    "check_duration",
    "check_memory",
    "check_out_folder",
    "choose_jobs",
    "estimate_memory",
    "machine_memory",
    "require_extra",
]

#: A week of simulated time: the longest shipped scenario is 40 minutes, and a week at
#: the baseline's load is already about an hour of wall time per replication.
MAX_DURATION = 7 * 86400.0
#: Windows per replication: the recorder keeps a latency histogram per window and tenant
#: (successes), and one per window (failures).
MAX_WINDOWS = 100_000
#: A worker process: the interpreter, numpy, pandas, SimPy and one system in flight.
WORKER_BYTES = 250 * 2**20
#: Recorder counters and tier fields per window, rounded up (their number varies).
_PER_WINDOW_SCALARS = 128

#: Optional module -> (extra of the lab, requirement as in pyproject.toml).
EXTRAS: dict[str, tuple[str, str]] = {
    "ciw": ("validation", "ciw>=3.2"),
    "pyarrow": ("sweep", "pyarrow>=15"),
    "dask": ("sweep", "dask[distributed]>=2024.1"),
}


def check_duration(source: ScenarioFile) -> None:
    """Refuse a run longer than :data:`MAX_DURATION` or with more than :data:`MAX_WINDOWS`."""
    run = source.scenario.run
    if run.duration > MAX_DURATION:
        raise source.error(("run", "duration"), f"{human_duration(run.duration)} is longer "
                           f"than the simulator's bound of {human_duration(MAX_DURATION)} "
                           "of simulated time; simulate a shorter stretch")
    windows = run.duration / run.window
    if windows > MAX_WINDOWS:
        raise source.error(("run", "window"), f"{windows:,.0f} windows of "
                           f"{human_duration(run.window)} exceed the bound of "
                           f"{MAX_WINDOWS:,} per run; use a longer run.window")


def estimate_memory(scenario: Scenario, replications: int, jobs: int) -> int:
    """Bytes a run needs: every replication's windows kept, plus the worker processes."""
    windows = int(scenario.run.duration / scenario.run.window) + 1
    tenants = len(scenario.workload.tenants)
    per_window = tenants * (N_BINS + len(OUTCOMES) + 1) + N_BINS + 1 + _PER_WINDOW_SCALARS
    per_run = windows * per_window * 8
    return replications * per_run + max(1, jobs) * (WORKER_BYTES + 2 * per_run)


def machine_memory() -> int | None:
    """Memory available to a new run (``MemAvailable``), or physical memory, or ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(scenario: Scenario, replications: int, jobs: int, file: str,
                 force: bool = False) -> None:
    """Refuse replications whose estimated memory exceeds the machine's, unless ``force``."""
    need, have = estimate_memory(scenario, replications, jobs), machine_memory()
    if force or have is None or need <= have:
        return
    raise ScenarioError(file, f"{replications:,} replications with {jobs} worker(s) need about "
                        f"{_gib(need)} of memory, and this machine has {_gib(have)} available; "
                        "use fewer replications (or a sweep, which keeps only metrics), or "
                        "--force to run anyway")


def choose_jobs(requested: int | None, work: int, warn: object = None) -> int:
    """Worker processes: ``requested`` capped at the cores (warning), default one per core."""
    cores = os.cpu_count() or 1
    if requested is not None and requested < 1:
        raise ScenarioError("--jobs", f"must be at least 1 (got {requested}); leave it out "
                            f"for one worker per core ({cores} here)")
    if requested is not None and requested > cores:
        if callable(warn):
            warn(f"warning: --jobs {requested} is more than the {cores} cores of this machine; "
                 f"using {cores} (more workers than cores only add memory)")
        requested = cores
    return max(1, min(requested or cores, work))


def check_out_folder(out: Path) -> None:
    """Make sure the run folder ``out`` can be written, before the run (exit 2 if not)."""
    if out.exists() and not out.is_dir():
        raise ScenarioError(str(out), "--out names an existing file; it must be a folder "
                            "(new or a previous run's)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ScenarioError(str(out), f"--out cannot be written: {exc.strerror or exc}") from None


def require_extra(module: str, what: str) -> None:
    """Exit 2 with the exact ``pip install`` line if the optional ``module`` is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        extra, requirement = EXTRAS[module]
        raise ScenarioError(what, f"needs the optional package {module!r}, which is not "
                            f"installed: pip install '{requirement}' (or, from the lab's "
                            f"checkout: pip install -e '.[{extra}]')") from None


def _gib(size: float) -> str:
    return f"{size / 2**30:,.1f} GiB"
