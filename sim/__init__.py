"""OmniSQL reliability lab: a discrete-event model of OmniSQL's data plane.

Data flow, one module each: :mod:`~sim.kernel` (streams, light events, stations,
recorder; knows nothing of OmniSQL) → :mod:`~sim.model` (components) → :mod:`~sim.run`
(one seed, one result) → :mod:`~sim.report` / :mod:`~sim.cli`. The scenario schema and
reader, the metrics and the checks come from the shared core :mod:`labcore`, which the
chaos extension and the load tests import too; the names below are sim's public API.

    >>> from sim import load_scenario, simulate, compute_metrics
    >>> scenario = load_scenario("scenarios/baseline.yaml", overrides=["run.duration=2m"])
    >>> metrics = compute_metrics(simulate(scenario, seed=1))

The hot path runs compiled when ``pip install`` could build it and its sources are
unchanged since, else as the same sources in plain Python; :func:`path_status` says
which (see :mod:`sim._compiled`). Results are the same either way.
"""

from labcore.checks import CheckResult, evaluate_checks, passes
from labcore.metrics import Estimate, aggregate, compute_metrics, window_table
from labcore.scenario import Scenario
from labcore.scenario_file import ScenarioError, ScenarioFile, load_scenario, read_scenario

# sim._compiled decides, once, whether the kernel and the model load compiled or pure: it
# must be imported before them (labcore, above, imports nothing of sim).
from ._compiled import PathStatus
from ._compiled import status as path_status
from .kernel.streams import derive_seed
from .report import verdict_table, write_run
from .run import RunResult, replication_seeds, run_replications, simulate

__all__ = [
    "CheckResult",
    "Estimate",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "ScenarioFile",
    "PathStatus",
    "aggregate",
    "compute_metrics",
    "derive_seed",
    "evaluate_checks",
    "load_scenario",
    "passes",
    "path_status",
    "read_scenario",
    "replication_seeds",
    "run_replications",
    "simulate",
    "verdict_table",
    "window_table",
    "write_run",
]
