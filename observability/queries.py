"""The runbooks' named PromQL queries (``runbook_queries.yml``) and a small client for
Prometheus's instant-query API, shared by the suite, the chaos probes and the docs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["QUERIES_FILE", "RunbookQuery", "instant", "load_queries", "ranking"]

QUERIES_FILE = Path(__file__).resolve().parent / "runbook_queries.yml"


@dataclass(frozen=True)
class RunbookQuery:
    """One named query: the SOP it serves, what it shows, and its PromQL template."""

    name: str
    sop: str
    summary: str
    why: str
    template: str

    def promql(self, window: str = "1m") -> str:
        """The query with every rate over ``window`` (a Prometheus duration, e.g. ``30s``)."""
        return self.template.replace("{window}", window).strip()


def load_queries(path: Path = QUERIES_FILE) -> dict[str, RunbookQuery]:
    data = yaml.safe_load(path.read_text())["queries"]
    return {name: RunbookQuery(name, q["sop"], q["summary"], q["why"], q["promql"])
            for name, q in data.items()}


def instant(url: str, promql: str, at: float | None = None,
            client: httpx.Client | None = None) -> list[dict[str, Any]]:
    """Evaluate ``promql`` at ``at`` (default now) on the Prometheus at ``url``; the
    result vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``). Raises on errors."""
    params: dict[str, Any] = {"query": promql}
    if at is not None:
        params["time"] = at
    http = client or httpx.Client(timeout=10.0)
    try:
        resp = http.get(f"{url.rstrip('/')}/api/v1/query", params=params)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
    finally:
        if client is None:
            http.close()
    if body.get("status") != "success" or body["data"]["resultType"] != "vector":
        raise ValueError(f"unexpected answer to {promql!r}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def ranking(result: list[dict[str, Any]], label: str) -> list[tuple[str, float]]:
    """``[(label value, value), ...]`` in the order Prometheus returned them."""
    return [(row["metric"].get(label, ""), float(row["value"][1])) for row in result]
