"""Control: the scenario's background load for the whole experiment, bounded.

Declared at the experiment level; it starts before the steady-state hypothesis (so the
hypothesis has traffic to judge), waits ``warmup`` seconds, and stops after the rollbacks.
Load = the scenario's tenants at its ``standin`` rates (``workload.scale`` applied), for
at most ``seconds`` and ``max_requests``; the API keys come from ``secrets``.

Every answer goes into the run's windows (:class:`chaosomnisql.windows.RunWindows`). When
the load stops, the windows become window facts: their metrics, over each check's scope,
go into the journal (``omnisql_windows``: what the verdict judges) and, with
``omnisql_results_dir``, ``facts.npz`` is written there. This control must be declared
before ``omnisql-verdict`` (Chaos Toolkit runs the after-controls in declared order).

    controls:
      - name: omnisql-load
        provider: {type: python, module: chaosomnisql.controls.load,
                   arguments: {seconds: 60, warmup: 4}}
"""

from __future__ import annotations

import dataclasses
import logging
import secrets as secrets_module
import time
from typing import Any

from chaoslib.types import Configuration, Experiment, Journal, Secrets

from .. import ledger
from ..api import admin_call, stats
from ..counters import CONNECTOR_METRICS, ConnectorPoller
from ..load import BackgroundLoad, plan_from_scenario
from ..settings import api_keys, endpoints, scenario_file, setting
from ..standin import configure_standin
from ..windows import RunWindows, measured_metrics

__all__ = ["POLLER", "WINDOWS", "after_experiment_control", "before_experiment_control"]
logger = logging.getLogger("chaostoolkit")
_KEY = "load"
#: The ledger's key of the run's :class:`~chaosomnisql.windows.RunWindows`.
WINDOWS = "windows"
#: The ledger's key of the run's :class:`~chaosomnisql.counters.ConnectorPoller`.
POLLER = "connector_poller"


def _windows(scenario: Any, warmup: float, configuration: Configuration) -> RunWindows:
    """The run's windows: ``omnisql_window``/``omnisql_sustain`` or the scenario's."""
    window = float(setting(configuration, "window") or scenario.run.window)
    sustain = float(setting(configuration, "sustain") or scenario.slo.sustain)
    return RunWindows(scenario, window, warmup, sustain)


def before_experiment_control(context: Experiment, seconds: float | None = None,
                              max_requests: int | None = None, warmup: float | None = None,
                              configuration: Configuration = None, secrets: Secrets = None,
                              **kwargs: Any) -> None:
    """Start the load; ``seconds`` (``omnisql_load_seconds``, default 600) bounds it, and
    ``warmup`` (``omnisql_warmup``, default the scenario's ``run.warmup``) lets the cache
    fill before the hypothesis judges the steady state, as the simulator's warm-up does.
    On the sandbox the stand-in is first configured from the scenario (issue 18,
    :mod:`chaosomnisql.standin`; what it cannot honour is logged and kept in the journal);
    the target's result-cache TTL is set to the scenario's ``topology.cache.ttl`` for the
    run (and put back afterwards)."""
    ledger.reset()
    scenario = scenario_file(configuration).scenario
    standin = configure_standin(configuration)  # issue 18: the stand-in from the scenario
    ledger.LEDGER.running["standin_not_honoured"] = (standin or {}).get("not_honoured")
    reasons = (standin or {}).get("reasons") or {}
    ledger.LEDGER.running["fault_not_honoured"] = {  # the verdict's fault_mismatch
        path: why for path, why in reasons.items() if path.startswith("faults.")}
    seconds = float(seconds or setting(configuration, "load_seconds", 600))
    if warmup is None:
        warmup = float(setting(configuration, "warmup") or scenario.run.warmup)
    before = admin_call("POST", "/admin/cache/options", configuration, {})
    admin_call("POST", "/admin/cache/options", configuration,
               {"ttl_seconds": scenario.topology.cache.ttl})
    ledger.LEDGER.running["cache_ttl_before"] = before.get("ttl_seconds")
    plan = plan_from_scenario(scenario, float(seconds), 1)
    cap = int(max_requests) if max_requests else int(plan.total_rate * float(seconds) * 2 + 100)
    # A fresh key sequence per run (recorded in the journal): with the scenario's fixed seed
    # every run would ask for exactly the keys the previous one left in the cache.
    seed = int(setting(configuration, "load_seed") or secrets_module.randbits(31))
    plan = dataclasses.replace(plan_from_scenario(scenario, float(seconds), cap), seed=seed)
    ledger.LEDGER.running["load_seed"] = seed
    windows = _windows(scenario, float(warmup), configuration)
    ledger.LEDGER.running[WINDOWS] = windows
    load = BackgroundLoad(plan, endpoints(configuration)["gateway_url"], api_keys(secrets),
                          recorder=windows, origin=windows.origin)
    ledger.LEDGER.running[_KEY] = load.start()
    # The stand-in's connector counters per window (fetches per key: issue 18).
    ledger.LEDGER.running[POLLER] = ConnectorPoller(
        windows, lambda seconds: stats(seconds, configuration)).start()
    logger.info(f"omnisql: background load {plan.total_rate:.1f} req/s for at most "
                f"{seconds:g} s / {cap} requests")
    time.sleep(float(warmup))


def after_experiment_control(context: Experiment, state: Journal = None,
                             configuration: Configuration = None, secrets: Secrets = None,
                             **kwargs: Any) -> None:
    not_honoured = ledger.LEDGER.running.pop("standin_not_honoured", None)
    if state is not None and not_honoured is not None:
        state["omnisql_standin_not_honoured"] = not_honoured  # issue 18
    fault_gaps = ledger.LEDGER.running.pop("fault_not_honoured", None)
    if state is not None and fault_gaps:
        state["omnisql_fault_not_honoured"] = fault_gaps
    ttl = ledger.LEDGER.running.pop("cache_ttl_before", None)
    if ttl is not None:
        admin_call("POST", "/admin/cache/options", configuration, {"ttl_seconds": ttl})
    poller = ledger.LEDGER.running.pop(POLLER, None)
    if poller is not None:
        poller.stop()
    load = ledger.LEDGER.running.pop(_KEY, None)
    if load is None:
        return
    report = {**load.stop().as_dict(), "seed": ledger.LEDGER.running.pop("load_seed", None)}
    logger.info(f"omnisql: background load sent {report['sent']}: {report['by_status']}")
    windows = ledger.LEDGER.running.pop(WINDOWS, None)
    if state is not None:
        state["omnisql_load"] = report
        if windows is not None:
            state["omnisql_windows"] = window_report(windows, configuration,
                                                     poller is not None and poller.seen)


def window_report(windows: RunWindows, configuration: Configuration,
                  connector_seen: bool = True) -> dict[str, Any]:
    """The run's window facts judged with the simulator's code: ``measured`` ``{metric
    key: value}`` per check and headline metric, and where ``facts.npz`` went (if
    anywhere). No whole window: ``measured`` is empty, so every check is not measured."""
    facts = windows.facts(list(ledger.LEDGER.faults), ledger.LEDGER.running.get("rpo_seconds"),
                          whole=ledger.LEDGER.running.get("run_facts"))
    out: dict[str, Any] = {"window": windows.window, "warmup": windows.warmup,
                           "sustain": windows.sustain, "elapsed": round(windows.now(), 3),
                           "measured": {}, "facts": None}
    if facts is None:
        return out
    out["windows"] = len(facts.arrays["start"])
    out["marks"] = [[m.kind, round(m.start, 3), None if m.end is None else round(m.end, 3)]
                    for m in facts.marks]
    measured = measured_metrics(facts, windows.scenario.checks)
    if not connector_seen:  # the target reported no connector counters: not measured
        measured = {k: v for k, v in measured.items() if not k.startswith(CONNECTOR_METRICS)}
    out["measured"] = measured
    results = setting(configuration, "results_dir")
    if results:
        out["facts"] = str(windows.save(facts, results))
    return out
