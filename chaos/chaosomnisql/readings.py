"""Prometheus's reading of what the measuring probes measured, over the same interval.

``measure_traffic`` reads the gateway's ``/v1/stats`` over its last ``window`` seconds; the
summary puts beside it what Prometheus (the on-call engineer's and Argo Rollouts' view)
says over the same seconds: the same ratio and P95 queried at the probe's end time over a
``[<window>s]`` range. The two differ by construction only in sampling (scrapes every few
seconds, histogram buckets), which is what the comparison shows. A metric Prometheus cannot
read (the latency histogram has no tenant label) or a query that fails reads None.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from labcore.registry import metric_key

__all__ = ["Query", "error_ratio_query", "latency_p95_query", "prometheus_readings"]

#: ``(promql, unix time) -> result vector`` (Prometheus's instant query at that time).
Query = Callable[[str, float], list[dict[str, Any]]]

_GATEWAY = 'omnisql_requests_total{scope="gateway"'


def _tenant_filter(tenants: list[str] | None) -> str:
    return "" if not tenants else ',tenant=~"' + "|".join(tenants) + '"'


def error_ratio_query(seconds: int, tenants: list[str] | None = None) -> str:
    """Failed (5xx or 429) over all gateway requests in the last ``seconds``, pooled over
    ``tenants`` (all when None): the stats' ``errors / requests``."""
    sel = _GATEWAY + _tenant_filter(tenants)
    total = f"sum(increase({sel}}}[{seconds}s]))"
    errors = f'(sum(increase({sel},status=~"5..|429"}}[{seconds}s])) or vector(0))'
    return f"{errors} / {total}"


def latency_p95_query(seconds: int) -> str:
    """Gateway P95 latency (seconds) over the last ``seconds``, from the histogram."""
    buckets = f'omnisql_request_latency_seconds_bucket{{scope="gateway"}}[{seconds}s]'
    return f"histogram_quantile(0.95, sum by (le) (rate({buckets})))"


def _unix(stamp: str) -> float:
    when = datetime.fromisoformat(stamp)
    if when.tzinfo is None:  # Chaos Toolkit's journal times are naive UTC
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _value(query: Query, promql: str, at: float) -> float | None:
    try:
        result = query(promql, at)
        value = float(result[0]["value"][1]) if result else None
    except Exception:  # a reading for comparison only: never fails the summary
        return None
    return None if value is None or value != value else value  # NaN: no traffic


def _traffic(entry: dict[str, Any], query: Query) -> dict[str, dict[str, Any]]:
    args = entry["activity"]["provider"].get("arguments") or {}
    output, prefix = entry["output"], args.get("prefix", "")
    seconds, at = int(output["window"]), _unix(entry["end"])
    tenants = args.get("tenants")
    promql = {f"{prefix}error_rate": error_ratio_query(seconds, tenants),
              f"{prefix}latency_p95": None if tenants else latency_p95_query(seconds)}
    return {metric_key(metric, "run"): {
        "value": None if q is None else _value(query, q, at), "window_seconds": seconds,
        "query": q, "stats": (output.get("measured") or {}).get(metric)}
        for metric, q in promql.items()}


def prometheus_readings(journal: dict[str, Any], query: Query) -> dict[str, dict[str, Any]]:
    """``{metric key: {"value", "window_seconds", "query", "stats"}}`` for each metric a
    succeeded ``measure_traffic`` probe measured (``value``: Prometheus's reading over the
    probe's interval, ``stats``: the probe's own)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in journal.get("run") or []:
        func = (entry.get("activity") or {}).get("provider", {}).get("func")
        output = entry.get("output")
        if (func == "measure_traffic" and entry.get("status") == "succeeded"
                and isinstance(output, dict) and "window" in output and entry.get("end")):
            out.update(_traffic(entry, query))
    return out
