"""``--slis-from prometheus``: the gate's error rate and P95 as the sandbox's Prometheus
reads them, judged by the lab's one judge (:func:`labcore.checks.judge`).

At the end of the run, after one more scrape has landed, the gateway's error ratio and P95
over the run's measured seconds (warm-up excluded) are read from Prometheus with the
recording rules' own selectors and error definition (``observability/rules/sli.yml``: a
5xx or a 429 over the gateway's requests). They are computed from the raw counters and the
latency histogram with ``increase`` over exactly those seconds, not from the rules' 1-minute
rates, which would mix the warm-up into a short run. Only the whole-run keys
(``error_rate``, ``latency_p95``) are replaced; checks over other scopes keep the client's
values. The summary reports both readings; a metric Prometheus did not return is None, and
a None fails its check (a missing observation never passes).
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from labcore.checks import judge
from labcore.sandbox_client import SandboxError, allowed_hosts, check_url, read_state, sandbox_dir
from labcore.scenario import Scenario
from loadtests.gates import GateResult
from loadtests.session import OptionsError

__all__ = ["SETTLE_SECONDS", "SLIS", "SOURCES", "Query", "http_query", "prometheus_url",
           "read_slis", "regate", "sli_queries"]

SOURCES = ("client", "prometheus")
SLIS = ("error_rate", "latency_p95")
#: ``promql -> result vector`` (an instant query, now).
Query = Callable[[str], list[dict[str, Any]]]
TIMEOUT_SECONDS = 10.0
#: Wait after the run so its last requests are scraped (twice the sandbox's 2 s interval).
SETTLE_SECONDS = 4.0
_GATEWAY = 'omnisql_requests_total{scope="gateway"'


def sli_queries(seconds: int) -> dict[str, str]:
    """The PromQL of each SLI over the last ``seconds`` (the run's measured seconds)."""
    errors = f'(sum(increase({_GATEWAY},status=~"5..|429"}}[{seconds}s])) or vector(0))'
    buckets = f'omnisql_request_latency_seconds_bucket{{scope="gateway"}}[{seconds}s]'
    return {"error_rate": f"{errors} / sum(increase({_GATEWAY}}}[{seconds}s]))",
            "latency_p95": f"histogram_quantile(0.95, sum by (le) (increase({buckets})))"}


def prometheus_url(directory: str | None, allow: list[str] | tuple[str, ...]) -> str:
    """The sandbox's Prometheus (``prometheus_url`` in its state), allowlisted."""
    try:
        state = read_state(sandbox_dir(directory))
        url = (state or {}).get("prometheus_url")
        if not url:
            raise OptionsError(f"--slis-from prometheus: no prometheus_url in the state file of "
                               f"{sandbox_dir(directory)} (no sandbox, or --no-prometheus)")
        return check_url(str(url), allowed_hosts(allow), "--allow-host")
    except SandboxError as exc:
        raise OptionsError(f"--slis-from prometheus: {exc}") from None


def http_query(url: str) -> Query:
    """Instant queries against ``url`` (already allowlisted)."""
    def query(promql: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{url}/api/v1/query?{params}",
                                    timeout=TIMEOUT_SECONDS) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise ValueError(f"prometheus: {body.get('error', body.get('status'))}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
    return query


def read_slis(query: Query, seconds: int) -> dict[str, float | None]:
    """Prometheus's SLIs over the last ``seconds``; None where it has no (finite) value."""
    out: dict[str, float | None] = {}
    for metric, promql in sli_queries(seconds).items():
        result = query(promql)
        value = float(result[0]["value"][1]) if result else math.nan
        out[metric] = value if math.isfinite(value) else None
    return out


def regate(scenario: Scenario, client: GateResult, readings: Mapping[str, float | None],
           faults_applied: bool) -> tuple[GateResult, dict[str, Any]]:
    """The gate judged with Prometheus's whole-run SLIs in place of the client's, and the
    summary's record of both readings."""
    metrics = {**client.metrics, **{m: readings.get(m) for m in SLIS}}
    verdict = judge(scenario.checks, metrics, "locust", faults_applied)
    both = {m: {"client": client.metrics.get(m), "prometheus": readings.get(m)} for m in SLIS}
    return GateResult(verdict.results, verdict.not_measured, metrics), both
