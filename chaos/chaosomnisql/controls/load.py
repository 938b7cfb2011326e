"""Control: the scenario's background load for the whole experiment, bounded.

Declared at the experiment level; it starts before the steady-state hypothesis (so the
hypothesis has traffic to judge), waits ``warmup`` seconds, and stops after the rollbacks.
Load = the scenario's tenants at its ``standin`` rates (``workload.scale`` applied), for
at most ``seconds`` and ``max_requests``; the API keys come from ``secrets``.

    controls:
      - name: omnisql-load
        provider: {type: python, module: chaosomnisql.controls.load,
                   arguments: {seconds: 60, warmup: 4}}
"""

from __future__ import annotations

import logging
import time
from typing import Any

from chaoslib.types import Configuration, Experiment, Journal, Secrets

from .. import ledger
from ..load import BackgroundLoad, plan_from_scenario
from ..settings import api_keys, endpoints, scenario_file, setting

__all__ = ["after_experiment_control", "before_experiment_control"]
logger = logging.getLogger("chaostoolkit")
_KEY = "load"


def before_experiment_control(context: Experiment, seconds: float | None = None,
                              max_requests: int | None = None, warmup: float | None = None,
                              configuration: Configuration = None, secrets: Secrets = None,
                              **kwargs: Any) -> None:
    """Start the load; ``seconds`` (``omnisql_load_seconds``, default 600) bounds it, and
    ``warmup`` (``omnisql_warmup``, default the stats window) gives the hypothesis traffic."""
    ledger.reset()
    scenario = scenario_file(configuration).scenario
    seconds = float(seconds or setting(configuration, "load_seconds", 600))
    if warmup is None:
        warmup = setting(configuration, "warmup") or setting(configuration, "window") \
            or scenario.run.window
    plan = plan_from_scenario(scenario, float(seconds), 1)
    cap = int(max_requests) if max_requests else int(plan.total_rate * float(seconds) * 2 + 100)
    plan = plan_from_scenario(scenario, float(seconds), cap)
    load = BackgroundLoad(plan, endpoints(configuration)["gateway_url"], api_keys(secrets))
    ledger.LEDGER.running[_KEY] = load.start()
    logger.info(f"omnisql: background load {plan.total_rate:.1f} req/s for at most "
                f"{seconds:g} s / {cap} requests")
    time.sleep(float(warmup))


def after_experiment_control(context: Experiment, state: Journal = None,
                             configuration: Configuration = None, secrets: Secrets = None,
                             **kwargs: Any) -> None:
    load = ledger.LEDGER.running.pop(_KEY, None)
    if load is None:
        return
    report = load.stop().as_dict()
    logger.info(f"omnisql: background load sent {report['sent']}: {report['by_status']}")
    if state is not None:
        state["omnisql_load"] = report
