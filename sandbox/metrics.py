"""Prometheus metrics shared by every service, and the merge behind admin's `/metrics`.

Every series carries `scope` (the dotted component name, e.g. `az-b.engine`), so the merged
exposition stays unambiguous without rewriting labels.
"""

from __future__ import annotations

from collections import OrderedDict

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CACHE_RESULTS",
    "CANARY_WEIGHT",
    "ENGINE_WORK",
    "LATENCY",
    "METADATA_UP",
    "PROVIDER_REQUESTS",
    "REPLICA_LAG",
    "REQUESTS",
    "ZONE_HEALTHY",
    "merge_expositions",
    "metrics_endpoint",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUESTS = Counter(
    "omnisql_requests", "Requests handled", ["scope", "status", "tenant", "connector"]
)
LATENCY = Histogram(
    "omnisql_request_latency_seconds", "Request latency", ["scope", "connector"],
    # 1.5 s is a bucket edge: the SLO and the canary judge compare P95 with 1.5 s exactly.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0,
             10.0),
)
#: What an engine slot is held for, per query, in two parts: ``service`` (from the slot to
#: the cache lookup: the engine's own work, parsing and planning) and ``cache_lookup`` (the
#: Redis round trip and decoding the entry, until the slot is freed on a miss or the rows
#: go back on a hit). The simulator's engine worker holds its slot for
#: ``topology.engine.service_time`` + ``topology.cache.latency``: `sim calibrate` fits these
#: two. Buckets from 25 µs: both are far below the request histogram's first edge (1 ms).
ENGINE_WORK = Histogram(
    "omnisql_engine_work_seconds", "Engine slot time per query, by part", ["scope", "part"],
    buckets=(0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
             0.05, 0.1, 0.25, 1.0),
)
CACHE_RESULTS = Counter("omnisql_cache_results", "Cache lookups", ["scope", "tenant", "result"])
PROVIDER_REQUESTS = Counter(
    "omnisql_provider_requests", "Calls to SaaS providers", ["scope", "provider", "status"]
)

ZONE_HEALTHY = Gauge("omnisql_zone_healthy", "1 when the gateway routes to the zone's engine",
                     ["scope", "zone"])
CANARY_WEIGHT = Gauge("omnisql_canary_weight", "Share of traffic sent to the canary", ["scope"])
METADATA_UP = Gauge("omnisql_metadata_node_up", "1 when the metadata node answers, by role",
                    ["scope", "node", "zone", "role"])
REPLICA_LAG = Gauge("omnisql_metadata_replica_lag_seconds", "Replica replay lag", ["scope"])


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample_line(name: str, labels: dict[str, str], value: float) -> str:
    if not labels:
        return f"{name} {floatToGoString(value)}"
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {floatToGoString(value)}"


def merge_expositions(texts: dict[str, str]) -> str:
    """Merge several services' expositions: one HELP/TYPE per family, `instance` label added."""
    families: OrderedDict[str, tuple[str, str, list[str]]] = OrderedDict()
    for instance, text in texts.items():
        for fam in text_string_to_metric_families(text):
            doc, kind, lines = families.setdefault(fam.name, (fam.documentation, fam.type, []))
            for s in fam.samples:
                lines.append(_sample_line(s.name, {**s.labels, "instance": instance}, s.value))
    out: list[str] = []
    for name, (doc, kind, lines) in families.items():
        # The parser strips a counter's `_total`; the 0.0.4 text format wants it back.
        shown = f"{name}_total" if kind == "counter" else name
        out += [f"# HELP {shown} {doc}", f"# TYPE {shown} {kind}", *lines]
    return "\n".join(out) + "\n"
