"""Probes on EKS staging: which nodes of a zone are schedulable."""

from __future__ import annotations

import importlib
from typing import Any

from chaoslib.types import Configuration, Secrets

from .actions import zone_selector

__all__ = ["zone_nodes"]


def zone_nodes(zone: str, configuration: Configuration = None,
               secrets: Secrets = None) -> dict[str, Any]:
    """``{"nodes": n, "unschedulable": m}`` for the nodes labelled with ``zone``."""
    k8s = importlib.import_module("chaosk8s")
    client = importlib.import_module("kubernetes.client")
    api = client.CoreV1Api(k8s.create_k8s_api_client(secrets))
    items = api.list_node(label_selector=zone_selector(zone)).items
    return {"nodes": len(items),
            "unschedulable": sum(1 for n in items if n.spec.unschedulable)}
