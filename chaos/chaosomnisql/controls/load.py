"""Control: the scenario's background load for the whole experiment, bounded.

Declared at the experiment level; its start is the run's t=0 (:mod:`..timeline`). It
starts before the steady-state hypothesis (so the hypothesis has traffic to judge), waits
until just before the first injection (the scenario's first ``at``, at least the warm-up
when the fault comes later), and stops after the rollbacks. Load = the scenario's tenants
at its ``standin`` rates (``workload.scale`` applied), for the run's length
(``run.duration``, or ``omnisql_load_seconds``) and, unmeasured, past it until the
rollbacks are over (at most :data:`~chaosomnisql.timeline.LOAD_TAIL` seconds: traffic for
the after hypothesis), and at most ``max_requests``; the API keys come from ``secrets``. The windows
cover ``[warmup, duration]``, as the simulator's.

Every answer goes into the run's windows (:class:`chaosomnisql.windows.RunWindows`). When
the load stops, the windows become window facts: their metrics, over each check's scope,
go into the journal (``omnisql_windows``: what the verdict judges) and, with
``omnisql_results_dir``, ``facts.npz`` is written there. This control must be declared
before ``omnisql-verdict`` (Chaos Toolkit runs the after-controls in declared order).

    controls:
      - name: omnisql-load
        provider: {type: python, module: chaosomnisql.controls.load,
                   arguments: {max_requests: 100000}}
"""

from __future__ import annotations

import dataclasses
import logging
import secrets as secrets_module
import time
from typing import Any

from chaoslib.types import Configuration, Experiment, Journal, Secrets

from labcore.retries import PolicyPush, policy_pushes

from .. import ledger
from ..api import admin_call, stats
from ..counters import CONNECTOR_METRICS, ConnectorPoller
from ..load import BackgroundLoad, plan_from_scenario
from ..settings import api_keys, endpoints, scenario_file, setting
from ..standin import configure_standin
from ..timeline import LOAD_TAIL, Timeline, injection_times, run_timeline
from ..windows import RunWindows, measured_metrics

__all__ = ["POLLER", "WINDOWS", "after_experiment_control", "before_experiment_control"]
logger = logging.getLogger("chaostoolkit")
_KEY = "load"
#: The ledger's key of the run's :class:`~chaosomnisql.windows.RunWindows`.
WINDOWS = "windows"
#: The ledger's key of the run's :class:`~chaosomnisql.counters.ConnectorPoller`.
POLLER = "connector_poller"


def _windows(scenario: Any, timeline: Timeline, configuration: Configuration) -> RunWindows:
    """The run's windows, ``[warmup, duration]`` of the run's timeline, each
    ``omnisql_window`` long, the sustain ``omnisql_sustain`` (else the scenario's)."""
    window = float(setting(configuration, "window") or scenario.run.window)
    sustain = float(setting(configuration, "sustain") or scenario.slo.sustain)
    return RunWindows(scenario, window, timeline.warmup, sustain, duration=timeline.duration)


def before_experiment_control(context: Experiment, seconds: float | None = None,
                              max_requests: int | None = None,
                              configuration: Configuration = None, secrets: Secrets = None,
                              **kwargs: Any) -> None:
    """Start the load (t=0 of the run) and wait until the steady-state hypothesis is due:
    :attr:`Timeline.hypothesis_at <chaosomnisql.timeline.Timeline.hypothesis_at>`, just
    before the first injection, after the warm-up that lets the cache fill. ``seconds``
    bounds the load (default: the run's length and :data:`LOAD_TAIL` after it). On the
    sandbox the stand-in is first configured from the scenario (issue 18,
    :mod:`chaosomnisql.standin`; what it cannot honour is logged and kept in the journal);
    the target's result-cache TTL is set to the scenario's ``topology.cache.ttl`` for the
    run (and put back afterwards)."""
    ledger.reset()
    scenario = scenario_file(configuration).scenario
    timeline = run_timeline(configuration)
    _configure_target(scenario, configuration)
    seconds = float(seconds or timeline.duration + LOAD_TAIL)
    plan = plan_from_scenario(scenario, seconds, 1)
    cap = int(max_requests) if max_requests else int(plan.total_rate * seconds * 2 + 100)
    # A fresh key sequence per run (recorded in the journal): with the scenario's fixed seed
    # every run would ask for exactly the keys the previous one left in the cache.
    seed = int(setting(configuration, "load_seed") or secrets_module.randbits(31))
    plan = dataclasses.replace(plan_from_scenario(scenario, seconds, cap), seed=seed)
    ledger.LEDGER.running["load_seed"] = seed
    windows = _windows(scenario, timeline, configuration)
    ledger.LEDGER.running[WINDOWS] = windows
    load = BackgroundLoad(plan, endpoints(configuration)["gateway_url"], api_keys(secrets),
                          recorder=windows, origin=windows.origin,
                          pushes=_pushes(scenario, timeline))
    ledger.LEDGER.running[_KEY] = load.start()
    # The stand-in's connector counters per window (fetches per key: issue 18).
    ledger.LEDGER.running[POLLER] = ConnectorPoller(
        windows, lambda seconds: stats(seconds, configuration)).start()
    logger.info(f"omnisql: background load {plan.total_rate:.1f} req/s for at most "
                f"{seconds:g} s / {cap} requests; first injection at "
                f"{timeline.injections[:1]} s, run ends at {timeline.duration:g} s")
    time.sleep(max(0.0, windows.origin + timeline.hypothesis_at - time.monotonic()))


def _pushes(scenario: Any, timeline: Timeline) -> list[PolicyPush]:
    """The scenario's client config pushes (retry_policy) on the run's clock: moved with
    the faults when the run moves its first injection (short mode, ``fault_at``)."""
    times = injection_times(scenario)
    shift = timeline.injections[0] - times[0] if times and timeline.injections else 0.0
    return [dataclasses.replace(p, at=p.at + shift) for p in policy_pushes(scenario)]


def _configure_target(scenario: Any, configuration: Configuration) -> None:
    """The stand-in from the scenario (what it cannot honour into the ledger, for the
    journal and the verdict's fault_mismatch) and the scenario's cache TTL."""
    standin = configure_standin(configuration)  # issue 18: the stand-in from the scenario
    ledger.LEDGER.running["standin_not_honoured"] = (standin or {}).get("not_honoured")
    reasons = (standin or {}).get("reasons") or {}
    ledger.LEDGER.running["fault_not_honoured"] = {
        path: why for path, why in reasons.items() if path.startswith("faults.")}
    before = admin_call("POST", "/admin/cache/options", configuration, {})
    admin_call("POST", "/admin/cache/options", configuration,
               {"ttl_seconds": scenario.topology.cache.ttl})
    ledger.LEDGER.running["cache_ttl_before"] = before.get("ttl_seconds")


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
                           "sustain": windows.sustain, "duration": windows.duration,
                           "elapsed": round(windows.now(), 3),
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
