"""Infrastructure faults on the sandbox, through its fault and admin API.

Each action checks the sandbox address against the allowlist (loopback by default) and
raises :class:`~chaoslib.exceptions.ActivityFailed` when the API refuses, so a failed
injection is a failed activity (and, through the lab's verdict control, a failed run).
"""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from ..api import admin_call

__all__ = [
    "fail_over_cache",
    "fail_over_metadata",
    "kill_metadata_primary",
    "lose_region",
    "lose_zone",
    "promote_metadata_replica",
    "rebuild_metadata_replica",
    "reset_faults",
    "restore_zone",
]


def lose_zone(zone: str, configuration: Configuration = None,
              secrets: Secrets = None) -> dict[str, Any]:
    """Stop every process of ``zone`` (engine, connector, and the metadata primary if there)."""
    result: dict[str, Any] = admin_call("POST", f"/faults/az/{zone}/lose", configuration)
    return result


def restore_zone(zone: str, configuration: Configuration = None,
                 secrets: Secrets = None) -> dict[str, Any]:
    """Start the zone's processes again."""
    result: dict[str, Any] = admin_call("POST", f"/faults/az/{zone}/restore", configuration)
    return result


def lose_region(configuration: Configuration = None,
                secrets: Secrets = None) -> dict[str, Any]:
    """Lose every zone and the metadata primary; the stand-in then runs the applied
    scenario's failover timeline (``GET /faults`` shows it under ``region``)."""
    result: dict[str, Any] = admin_call("POST", "/faults/region/lose", configuration)
    return result


def kill_metadata_primary(configuration: Configuration = None,
                          secrets: Secrets = None) -> dict[str, Any]:
    """Kill the current metadata primary (PostgreSQL immediate shutdown: unsent WAL lost)."""
    result: dict[str, Any] = admin_call("POST", "/faults/metadata/primary/kill", configuration)
    return result


def promote_metadata_replica(configuration: Configuration = None,
                             secrets: Secrets = None) -> dict[str, Any]:
    """Promote the replica (the old primary is fenced first)."""
    status: dict[str, Any] = admin_call("POST", "/admin/metadata/promote", configuration)
    return status


def fail_over_metadata(configuration: Configuration = None,
                       secrets: Secrets = None) -> dict[str, Any]:
    """Lose the metadata primary (immediate shutdown) and promote the replica."""
    kill_metadata_primary(configuration, secrets)
    return promote_metadata_replica(configuration, secrets)


def fail_over_cache(configuration: Configuration = None,
                    secrets: Secrets = None) -> dict[str, Any]:
    """Not available: the sandbox's Redis is a single node (see docs/sandbox.md)."""
    raise ActivityFailed("the sandbox has a single Redis node: no cache failover to test")


def rebuild_metadata_replica(configuration: Configuration = None,
                             secrets: Secrets = None) -> dict[str, Any]:
    """Re-clone a demoted primary as the new replica; a no-op when nothing needs it."""
    status: dict[str, Any] = admin_call("GET", "/admin/metadata/status", configuration)
    if not status.get("needs_rebuild"):
        return status
    rebuilt: dict[str, Any] = admin_call("POST", "/admin/metadata/rebuild", configuration)
    return rebuilt


def reset_faults(configuration: Configuration = None,
                 secrets: Secrets = None) -> dict[str, Any]:
    """Undo every active fault (zones, providers, canary, killed nodes); idempotent."""
    result: dict[str, Any] = admin_call("POST", "/faults/reset", configuration)
    return result
