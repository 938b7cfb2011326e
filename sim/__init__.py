"""OmniSQL reliability lab: a discrete-event model of OmniSQL's data plane.

Data flow, one module each: :mod:`~sim.scenario` (schema) and :mod:`~sim.scenario_file`
(reading) → :mod:`~sim.model` (components) → :mod:`~sim.run` (one seed, one result) →
:mod:`~sim.metrics` → :mod:`~sim.checks` → :mod:`~sim.report`. The kernel
(:mod:`~sim.kernel`: streams, light events, stations, recorder) knows nothing of OmniSQL.

    >>> from sim import load_scenario, simulate, compute_metrics
    >>> scenario = load_scenario("scenarios/baseline.yaml", overrides=["run.duration=2m"])
    >>> metrics = compute_metrics(simulate(scenario, seed=1))
"""

from .checks import CheckResult, evaluate_checks, passes
from .metrics import Estimate, aggregate, compute_metrics, window_table
from .run import RunResult, replication_seeds, run_replications, simulate
from .scenario import Scenario
from .scenario_file import ScenarioError, ScenarioFile, load_scenario, read_scenario

__all__ = [
    "CheckResult",
    "Estimate",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "ScenarioFile",
    "aggregate",
    "compute_metrics",
    "evaluate_checks",
    "load_scenario",
    "passes",
    "read_scenario",
    "replication_seeds",
    "run_replications",
    "simulate",
    "window_table",
]
