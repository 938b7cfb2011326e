"""Chaos Toolkit extension for OmniSQL: the lab's experiments against the sandbox or EKS.

Activities experiments name: :mod:`chaosomnisql.actions` and :mod:`chaosomnisql.probes`
(target-neutral), which dispatch infrastructure faults to :mod:`chaosomnisql.sandbox` (the
local stand-in, default) or :mod:`chaosomnisql.eks` (real staging) per the configuration
key ``omnisql_target``. Controls: :mod:`chaosomnisql.controls.load` (background load) and
:mod:`chaosomnisql.controls.verdict` (no false greens, the summary).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from chaoslib.discovery.discover import (
    discover_actions,
    discover_probes,
    initialize_discovery_result,
)
from chaoslib.types import DiscoveredActivities, Discovery

__all__ = ["__version__", "discover"]

try:
    __version__ = version("chaosomnisql")
except PackageNotFoundError:  # imported from a checkout without `pip install -e chaos/`
    __version__ = "0.0.0"

ACTION_MODULES = ("chaosomnisql.actions", "chaosomnisql.sandbox.actions",
                  "chaosomnisql.eks.actions")
PROBE_MODULES = ("chaosomnisql.probes", "chaosomnisql.eks.probes")


def discover(discover_system: bool = True) -> Discovery:
    """Every action and probe of the extension, with its signature and documentation."""
    discovery = initialize_discovery_result("chaosomnisql", __version__, "omnisql")
    discovery["activities"].extend(load_exported_activities())
    return discovery


def load_exported_activities() -> list[DiscoveredActivities]:
    activities: list[DiscoveredActivities] = []
    for name in ACTION_MODULES:
        activities.extend(discover_actions(name))
    for name in PROBE_MODULES:
        activities.extend(discover_probes(name))
    return activities
