"""Probes that read the SLIs from Prometheus, as an on-call engineer or Argo Rollouts would,
instead of the stand-in's own ``/v1/stats``.

The Prometheus is ``omnisql_prometheus_url`` when set (the ``eks`` target's, or any
override), else the sandbox's (``prometheus_url`` in its ``state.json``); its host must be
on ``omnisql_allowed_hosts`` like every other URL. Queries are the lab's recording rules and
runbook queries (``observability/``), over a ``window`` (a Prometheus duration).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from .settings import _default_dir, check_url, scenario_file, setting, target_name

__all__ = [
    "noisy_tenant",
    "prometheus_error_ratio",
    "prometheus_latency_p95",
    "prometheus_query",
    "prometheus_url",
    "runbook_query",
    "within_prometheus_slo",
]

TIMEOUT_SECONDS = 10.0
_GATEWAY = 'omnisql_requests_total{scope="gateway"'


def prometheus_url(configuration: Configuration = None, secrets: Secrets = None) -> str:
    """The Prometheus the probes read, checked against the allowlist."""
    url = setting(configuration, "prometheus_url")
    if not url and target_name(configuration) == "sandbox":
        path = Path(setting(configuration, "sandbox_dir", _default_dir())) / "state.json"
        try:
            url = json.loads(path.read_text()).get("prometheus_url")
        except FileNotFoundError:
            raise ActivityFailed(f"no running sandbox: {path} not found") from None
    if not url:
        raise ActivityFailed("no Prometheus: set omnisql_prometheus_url (the sandbox was "
                             "started with --no-prometheus?)")
    return check_url(str(url), configuration)


def prometheus_query(query: str, configuration: Configuration = None,
                     secrets: Secrets = None, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query (now, or at unix time ``at``); the result vector
    (``[{"metric": {...}, "value": [t, "v"]}]``)."""
    url = prometheus_url(configuration).rstrip("/") + "/api/v1/query"
    params: dict[str, Any] = {"query": query} if at is None else {"query": query, "time": at}
    try:
        resp = httpx.get(url, params=params, timeout=TIMEOUT_SECONDS)
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ActivityFailed(f"prometheus query failed: {type(exc).__name__}") from None
    if resp.status_code >= 400 or body.get("status") != "success":
        raise ActivityFailed(f"prometheus: HTTP {resp.status_code} {body.get('error', '')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _scalar(query: str, configuration: Configuration) -> float | None:
    result = prometheus_query(query, configuration)
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def prometheus_error_ratio(window: str = "1m", configuration: Configuration = None,
                           secrets: Secrets = None) -> float | None:
    """Share of gateway requests that failed (5xx or 429) over ``window``; None without
    traffic. The SLO's error rate, as the burn-rate rules read it."""
    total = f"sum(rate({_GATEWAY}}}[{window}]))"
    errors = f'(sum(rate({_GATEWAY},status=~"5..|429"}}[{window}])) or vector(0))'
    return _scalar(f"{errors} / {total}", configuration)


def prometheus_latency_p95(window: str = "1m", configuration: Configuration = None,
                           secrets: Secrets = None) -> float | None:
    """Gateway P95 latency in seconds over ``window`` (from the latency histogram)."""
    buckets = f'omnisql_request_latency_seconds_bucket{{scope="gateway"}}[{window}]'
    return _scalar(f"histogram_quantile(0.95, sum by (le) (rate({buckets})))", configuration)


def runbook_query(name: str, window: str = "1m", configuration: Configuration = None,
                  secrets: Secrets = None) -> list[list[Any]]:
    """A named runbook query (``observability/runbook_queries.yml``): ``[[labels, value]]``
    in the query's order (worst first for the rankings)."""
    from observability.queries import load_queries

    queries = load_queries()
    if name not in queries:
        raise ActivityFailed(f"no runbook query {name!r}; known: {sorted(queries)}")
    result = prometheus_query(queries[name].promql(window), configuration)
    return [[row["metric"], float(row["value"][1])] for row in result]


def noisy_tenant(window: str = "1m", configuration: Configuration = None,
                 secrets: Secrets = None) -> str | None:
    """SOP-101 step 1: the tenant making the connectors fetch the most, or None."""
    rows = runbook_query("noisy_tenant", window, configuration)
    return str(rows[0][0].get("tenant")) if rows else None


def within_prometheus_slo(value: float | None = None, metric: str = "error_rate",
                          configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Tolerance: ``value`` (a Prometheus reading of ``metric``, ``error_rate`` or
    ``latency_p95``) within the scenario's SLO; no reading (no traffic) is not within."""
    slo = scenario_file(configuration).scenario.slo
    limits = {"error_rate": slo.error_rate, "latency_p95": slo.latency_p95}
    if metric not in limits:
        raise ActivityFailed(f"metric must be one of {sorted(limits)}")
    return value is not None and value <= limits[metric]
