"""Control: fail the runs Chaos Toolkit would call green, and print the lab's summary.

At the end of the experiment it reads the journal (:func:`chaosomnisql.verdict.verdict`):
an activity that raised, a skipped method (before-hypothesis failed), a failed rollback
or a measured check (RTO, RPO) outside the scenario's target sets the journal's status to
``failed``, so ``chaos run`` exits 1. It then prints the summary beside the simulator's
prediction for the same scenario and profile (and, where the target has a Prometheus,
Prometheus's reading of each measured check over the same seconds), and stores it in the journal
(``omnisql_summary``) and in ``summary_path`` (default: ``summary.json`` in
``omnisql_results_dir``, beside the load control's ``facts.npz``; none without either).

    controls:
      - name: omnisql-verdict
        provider: {type: python, module: chaosomnisql.controls.verdict,
                   arguments: {replications: 10}}
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Experiment, Journal, Secrets

from ..prometheus import prometheus_query, prometheus_url
from ..readings import prometheus_readings
from ..settings import scenario_file, setting
from ..summary import MIN_REPLICATIONS, build_summary, predict, render

__all__ = ["after_experiment_control"]
logger = logging.getLogger("chaostoolkit")


def _prometheus(state: Journal, configuration: Configuration) -> dict[str, Any] | None:
    """Prometheus's readings of the measured metrics, when the target has a Prometheus."""
    try:
        prometheus_url(configuration)
    except ActivityFailed:  # no Prometheus (--no-prometheus, none configured): stats only
        return None
    return prometheus_readings(
        state, lambda q, at: prometheus_query(q, configuration, at=at))


def after_experiment_control(context: Experiment, state: Journal = None,
                             replications: int = MIN_REPLICATIONS,
                             summary_path: str | None = None,
                             configuration: Configuration = None, secrets: Secrets = None,
                             **kwargs: Any) -> None:
    if state is None:
        return
    scenario = scenario_file(configuration)
    prediction = predict(scenario.scenario, int(replications)) if int(replications) > 0 else None
    summary = build_summary(state, scenario, prediction, _prometheus(state, configuration))
    if not summary["passed"] and state.get("status") == "completed":
        # Chaos Toolkit would exit 0 here; the journal says otherwise.
        state["status"] = "failed"
        summary["status"] = "failed"
    state["omnisql_summary"] = summary
    print(render(summary), flush=True)
    results = setting(configuration, "results_dir")
    summary_path = summary_path or (str(Path(results) / "summary.json") if results else None)
    if summary_path:
        Path(summary_path).parent.mkdir(parents=True, exist_ok=True)
        with open(summary_path, "w") as fh:
            json.dump(summary, fh, indent=2, default=str)
