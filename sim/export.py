"""``python -m sim export``: a scenario's canary analysis as delivery resources.

The simulator's judge (``release.analysis``) becomes the analysis that gates a real release:

* ``argo-rollouts``: an Argo Rollouts ``AnalysisTemplate`` (``argoproj.io/v1alpha1``) with
  one Prometheus metric per condition; ``interval`` is the analysis window, ``count`` the
  windows per step and ``failureLimit`` = failing windows - 1 (Argo fails a metric when its
  failed measurements exceed the limit).
* ``flagger``: two Flagger ``MetricTemplate`` resources and a ``Canary`` whose analysis
  holds the thresholds (``flagger.app/v1beta1``).

The queries read the stand-in's metric names (``sandbox/metrics.py``) and, when the window is
one minute, the recording rules of ``observability/rules/canary.yml``; other windows get the
same expressions over raw counters with the window in the range selector. A window with
fewer than ``min_samples`` canary requests is inconclusive, as in the simulator: the Argo
query answers NaN (neither condition holds), the Flagger query answers nothing (Flagger
halts advancement without counting a failure). The simulator judges with exactly the
exported rule's counting under ``release.analysis.counting: argo`` (docs/observability.md).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from labcore.scenario import Canary, CanaryAnalysis, Scenario

__all__ = [
    "CanaryQueries",
    "add_parser",
    "argo_analysis_template",
    "canary_queries",
    "flagger_resources",
    "run_command",
]

DEFAULT_PROMETHEUS = "http://prometheus.monitoring.svc:9090"
_CANARY = 'scope=~"az-.+[.]canary"'
_STABLE = 'scope=~"az-.+[.]engine"'


@dataclass(frozen=True)
class CanaryQueries:
    """PromQL for one analysis window: each answers one value, or nothing when the canary
    served fewer than ``min_samples`` requests in the window."""

    error_increase: str
    latency_p95: str

    def argo(self, name: str) -> str:
        """Argo reads ``result[0]``: an inconclusive window must answer NaN, not nothing."""
        return f"({getattr(self, name)}) or on() vector(NaN)"


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def _ratio(selector: str, window: str) -> str:
    errors = f'omnisql_requests_total{{{selector},status=~"5.."}}'
    return (f"((sum(rate({errors}[{window}])) or vector(0))"
            f" / sum(rate(omnisql_requests_total{{{selector}}}[{window}])))")


def _parts(window: float) -> tuple[str, str, str, str]:
    """(canary error ratio, stable error ratio, canary requests in the window, canary P95)."""
    if window == 60:  # the recording rules of observability/rules/canary.yml
        ratio = 'sum(track:omnisql_engine_error_ratio:rate1m{track="%s"})'
        return (ratio % "canary", ratio % "stable", "omnisql:canary_requests:increase1m",
                'sum(track:omnisql_engine_latency_seconds:p95_1m{track="canary"})')
    w = _duration(window)
    p95 = ("histogram_quantile(0.95, sum by (le) ("
           f"rate(omnisql_request_latency_seconds_bucket{{{_CANARY}}}[{w}])))")
    return (_ratio(_CANARY, w), _ratio(_STABLE, w),
            f"sum(increase(omnisql_requests_total{{{_CANARY}}}[{w}]))", p95)


def canary_queries(analysis: CanaryAnalysis) -> CanaryQueries:
    """The window's error-rate increase (points, or relative to the stable track's rate)
    and the canary's P95, each gated on the canary's sample count."""
    canary, stable, samples, p95 = _parts(analysis.window)
    if analysis.error_reading == "points":
        increase = f"{canary} - {stable}"
    else:
        increase = f"{canary} / {stable} - 1"
    gate = f"and on() ({samples} >= {analysis.min_samples})"
    return CanaryQueries(f"({increase}) {gate}", f"({p95}) {gate}")


def _canary(scenario: Scenario) -> Canary:
    if not isinstance(scenario.release, Canary):
        raise ValueError("release: the scenario has no canary release to export")
    return scenario.release


def _metadata(scenario: Scenario, name: str, release: Canary) -> dict[str, Any]:
    steps = ",".join(f"{s * 100:g}%" for s in release.steps)
    notes = {"omnisql.lab/scenario": scenario.name, "omnisql.lab/steps": steps,
             # the simulator's rates of exactly this rule: its judge with Argo's counting
             "omnisql.lab/simulate": f"python -m sim run scenarios/{scenario.name}.yaml "
                                     "--set release.analysis.counting=argo"}
    if release.analysis.mann_whitney:
        notes["omnisql.lab/not-exported"] = (
            "mann_whitney: the Mann-Whitney latency test has no PromQL form")
    return {"name": name, "labels": {"app.kubernetes.io/part-of": "omnisql"},
            "annotations": notes}


def argo_analysis_template(scenario: Scenario, address: str = DEFAULT_PROMETHEUS
                           ) -> dict[str, Any]:
    """The AnalysisTemplate to run at each canary step of an Argo Rollout."""
    release = _canary(scenario)
    analysis, queries = release.analysis, canary_queries(release.analysis)
    limits = {"error-rate-increase": ("error_increase", analysis.error_increase),
              "latency-p95": ("latency_p95", analysis.latency_p95)}
    metrics = []
    for metric, (field, limit) in limits.items():
        metrics.append({
            "name": metric, "interval": _duration(analysis.window),
            "count": analysis.windows_per_step,
            "failureLimit": analysis.failing_windows - 1,
            # Inconclusive windows pause the rollout for a human (Argo's default limit, 0).
            "inconclusiveLimit": 0,
            "successCondition": f"!isNaN(result[0]) && result[0] <= {limit:g}",
            "failureCondition": f"!isNaN(result[0]) && result[0] > {limit:g}",
            "provider": {"prometheus": {"address": "{{args.prometheus-address}}",
                                        "query": queries.argo(field)}},
        })
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": _metadata(scenario, f"omnisql-canary-{_slug(scenario.name)}", release),
            "spec": {"args": [{"name": "prometheus-address", "value": address}],
                     "metrics": metrics}}


def _slug(name: str) -> str:
    return name.lower().replace("_", "-")


def _metric_template(name: str, query: str, address: str) -> dict[str, Any]:
    return {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "omnisql"}},
            "spec": {"provider": {"type": "prometheus", "address": address}, "query": query}}


def flagger_resources(scenario: Scenario, address: str = DEFAULT_PROMETHEUS,
                      target: str = "omnisql-engine", port: int = 8080) -> list[dict[str, Any]]:
    """Two MetricTemplates and the Canary that uses them (target and port are the
    deployment's; the defaults are placeholders)."""
    release = _canary(scenario)
    analysis, queries = release.analysis, canary_queries(release.analysis)
    slug, interval = _slug(scenario.name), _duration(analysis.window)
    templates = {"error-rate-increase": (queries.error_increase, analysis.error_increase),
                 "latency-p95": (queries.latency_p95, analysis.latency_p95)}
    docs = [_metric_template(f"{slug}-{m}", q, address) for m, (q, _) in templates.items()]
    metrics = [{"name": m, "templateRef": {"name": f"{slug}-{m}"},
                "thresholdRange": {"max": limit}, "interval": interval}
               for m, (_, limit) in templates.items()]
    canary = {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": _metadata(scenario, target, release),
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "service": {"port": port},
            "analysis": {"interval": interval, "threshold": analysis.failing_windows,
                         "stepWeights": [round(s * 100) for s in release.steps[:-1]],
                         "metrics": metrics},
        },
    }
    return [*docs, canary]


# --------------------------------------------------------------------------- command line


def add_parser(sub: Any) -> None:
    export = sub.add_parser("export", help="write a scenario's canary analysis for delivery")
    export.add_argument("target", choices=("argo-rollouts", "flagger"))
    export.add_argument("scenario", type=Path)
    export.add_argument("--profile", help="apply a target profile of the scenario")
    export.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE")
    export.add_argument("--prometheus", default=DEFAULT_PROMETHEUS,
                        help=f"Prometheus address the analysis queries (default "
                        f"{DEFAULT_PROMETHEUS})")
    export.add_argument("--out", type=Path, help="write here instead of standard output")


def run_command(args: argparse.Namespace, console: Console) -> int:
    from labcore.scenario_file import ScenarioError, read_scenario

    source = read_scenario(args.scenario, args.profile, args.overrides)
    try:
        if args.target == "argo-rollouts":
            docs = [argo_analysis_template(source.scenario, args.prometheus)]
        else:
            docs = flagger_resources(source.scenario, args.prometheus)
    except ValueError as exc:
        raise ScenarioError(str(args.scenario), str(exc)) from None
    text = yaml.safe_dump_all(docs, sort_keys=False, width=100)
    if args.out:
        args.out.write_text(text)
        console.print(f"wrote {args.out}", highlight=False)
    else:
        sys.stdout.write(text)
    return 0
