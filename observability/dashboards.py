"""Grafana dashboards as code, built with grafana-foundation-sdk and committed as JSON.

Three dashboards over the recording rules (``rules/``) and the runbook queries
(``runbook_queries.yml``): the overview per tenant and zone with the SLO burn, the SOP
panels (101 noisy tenant, 102 stampede, 103 bulk 401), and the canary against stable.
``python -m observability.dashboards`` rewrites ``dashboards/*.json``; ``--check`` exits 1
when a committed file differs from the builder's output (the suite runs the same check).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

from observability.queries import load_queries

__all__ = ["DASHBOARDS", "OUT_DIR", "Panel", "build_all", "main", "render"]

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
_RUNBOOK = load_queries()


@dataclass(frozen=True)
class Panel:
    """One panel: a title, a PromQL query, its legend and unit; ``ranking`` draws bars."""

    title: str
    expr: str
    legend: str
    unit: str = "short"
    ranking: bool = False
    description: str = ""


def _runbook(name: str, legend: str, unit: str = "short") -> Panel:
    query = _RUNBOOK[name]
    return Panel(f"{query.sop}: {query.summary}", query.promql("1m"), legend, unit,
                 ranking=query.template.lstrip().startswith("sort_desc"),
                 description=" ".join(query.why.split()))


OVERVIEW = (
    Panel("Requests per tenant", "tenant:omnisql_requests:rate1m", "{{tenant}}", "reqps"),
    Panel("Error ratio per tenant (5xx and 429)", "tenant:omnisql_error_ratio:rate1m",
          "{{tenant}}", "percentunit"),
    Panel("429 per tenant", "tenant:omnisql_rate_limited:rate1m", "{{tenant}}", "reqps"),
    Panel("401 per tenant (bad API key)", "tenant:omnisql_unauthorized:rate1m", "{{tenant}}",
          "reqps"),
    Panel("Cache hit ratio per tenant", "tenant:omnisql_cache_hit_ratio:rate1m", "{{tenant}}",
          "percentunit"),
    Panel("Engine requests per zone", "sum by (zone) (zone:omnisql_engine_requests:rate1m)",
          "{{zone}}", "reqps"),
    Panel("Engine error ratio per zone", "zone:omnisql_engine_error_ratio:rate1m", "{{zone}}",
          "percentunit"),
    Panel("Engine P95 per zone", "zone:omnisql_engine_latency_seconds:p95_1m", "{{zone}}", "s"),
    Panel("Zone routed by the gateway (1 = healthy)", "zone:omnisql_zone_healthy:min",
          "{{zone}}"),
    Panel("Gateway P95 per connector", "connector:omnisql_gateway_latency_seconds:p95_1m",
          "{{connector}}", "s"),
    Panel("Gateway P99 per connector", "connector:omnisql_gateway_latency_seconds:p99_1m",
          "{{connector}}", "s"),
    Panel("Connector time per provider (mean)", "provider:omnisql_connector_seconds:mean1m",
          "{{provider}}", "s"),
    Panel("SLO: error ratio, 5 min and 1 h (budget 1%)",
          'label_replace(omnisql:slo_errors:ratio_rate5m, "window", "5m", "", "")'
          ' or label_replace(omnisql:slo_errors:ratio_rate1h, "window", "1h", "", "")',
          "{{window}}", "percentunit"),
    Panel("SLO: share slower than 1.5 s, 5 min and 1 h (budget 5%)",
          'label_replace(omnisql:slo_slow:ratio_rate5m, "window", "5m", "", "")'
          ' or label_replace(omnisql:slo_slow:ratio_rate1h, "window", "1h", "", "")',
          "{{window}}", "percentunit"),
)

SOPS = (
    _runbook("noisy_tenant", "{{tenant}}", "reqps"),
    _runbook("rate_limited_tenants", "{{tenant}}", "reqps"),
    _runbook("provider_rate_limited", "{{provider}}", "reqps"),
    _runbook("cache_miss_rate", "{{zone}}", "reqps"),
    _runbook("provider_calls", "{{provider}}", "reqps"),
    _runbook("connector_p95", "{{connector}}", "s"),
    _runbook("provider_unauthorized_ratio", "{{provider}}", "percentunit"),
)

CANARY = (
    Panel("Engine requests per track", "track:omnisql_engine_requests:rate1m", "{{track}}",
          "reqps"),
    Panel("Engine error ratio per track", "track:omnisql_engine_error_ratio:rate1m",
          "{{track}}", "percentunit"),
    Panel("Canary minus stable error ratio (rollback above 0.5 points)",
          "omnisql:canary_error_ratio_increase:rate1m", "increase", "percentunit"),
    Panel("P95 per track (rollback above 1.5 s)", "track:omnisql_engine_latency_seconds:p95_1m",
          "{{track}}", "s"),
    Panel("P99 per track (watched)", "track:omnisql_engine_latency_seconds:p99_1m",
          "{{track}}", "s"),
    Panel("Canary weight at the gateway", "max(omnisql_canary_weight)", "weight",
          "percentunit"),
)

#: uid -> (title, panels)
DASHBOARDS: dict[str, tuple[str, tuple[Panel, ...]]] = {
    "omnisql-overview": ("OmniSQL overview: tenants, zones, SLO", OVERVIEW),
    "omnisql-sops": ("OmniSQL runbooks: SOP-101, SOP-102, SOP-103", SOPS),
    "omnisql-canary": ("OmniSQL canary against stable", CANARY),
}


def _target(panel: Panel) -> prometheus.Dataquery:
    return (prometheus.Dataquery().expr(panel.expr).legend_format(panel.legend)
            .ref_id("A").datasource(DATASOURCE))


def _panel(panel: Panel, index: int) -> timeseries.Panel | bargauge.Panel:
    built: timeseries.Panel | bargauge.Panel
    if panel.ranking:  # a ranking reads best as bars, worst first
        built = bargauge.Panel().with_target(_target(panel).instant())
    else:
        built = timeseries.Panel().with_target(_target(panel))
    place = GridPos(h=8, w=12, x=12 * (index % 2), y=8 * (index // 2))  # two per row
    built = built.title(panel.title).unit(panel.unit).datasource(DATASOURCE).grid_pos(place)
    return built.description(panel.description) if panel.description else built


def _dashboard(uid: str, title: str, panels: tuple[Panel, ...]) -> dashboard.Dashboard:
    board = (dashboard.Dashboard(title).uid(uid).tags(["omnisql", "generated"])
             .refresh("30s").time("now-1h", "now").editable())
    board = board.with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus")
                                .type("prometheus"))
    for index, panel in enumerate(panels):
        board = board.with_panel(_panel(panel, index))
    return board


def render(uid: str) -> str:
    """The dashboard's JSON as committed (sorted keys, two-space indent, final newline)."""
    title, panels = DASHBOARDS[uid]
    return JSONEncoder(sort_keys=True, indent=2).encode(_dashboard(uid, title, panels).build()) \
        + "\n"


def build_all() -> dict[Path, str]:
    return {OUT_DIR / f"{uid}.json": render(uid) for uid in DASHBOARDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m observability.dashboards",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a committed dashboard differs from the builder")
    args = parser.parse_args(argv)
    stale = [p for p, text in build_all().items()
             if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path}: differs from the builder's output", file=sys.stderr)
        return 1 if stale else 0
    OUT_DIR.mkdir(exist_ok=True)
    for path, text in build_all().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
