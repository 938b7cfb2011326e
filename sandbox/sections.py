"""Validating one service's section of the stand-in's configuration (``sandbox.standin``).

Each service's ``POST /_control/config`` (the gateway's ``/internal/config``) takes its own
section of the configuration; whatever the body, a bad one is a ``400 BAD_REQUEST`` naming
the field, never a 500. Unknown fields are errors, as in every body of the sandbox.
"""

from __future__ import annotations

import math
from typing import Any

from sandbox.errors import ApiError

__all__ = ["connector_section", "engine_section", "gateway_section", "number", "slots_of"]


def _bad(message: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message)


def _known(body: Any, fields: set[str], where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad(f"{where} must be an object")
    unknown = set(body) - fields
    if unknown:
        raise _bad(f"{where}: unknown fields {sorted(unknown)}")
    missing = fields - set(body)
    if missing:
        raise _bad(f"{where}: missing fields {sorted(missing)}")
    return body


def number(value: Any, where: str, low: float = 0.0, high: float = 86_400.0,
           optional: bool = False) -> float | None:
    """A finite number in (low, high]; ``None`` allowed when ``optional``."""
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not low < value <= high):
        raise _bad(f"{where} must be a number in ({low:g}, {high:g}]")
    return float(value)


def _count(value: Any, where: str, low: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 100_000:
        raise _bad(f"{where} must be an integer in [{low}, 100000] or null")
    return value


def slots_of(body: dict[str, Any], where: str) -> tuple[int | None, int | None]:
    return _count(body["workers"], f"{where}.workers", 1), _count(
        body["queue_limit"], f"{where}.queue_limit", 0)


def engine_section(body: Any) -> dict[str, Any]:
    body = _known(body, {"workers", "queue_limit", "timeout_seconds"}, "engine")
    workers, queue = slots_of(body, "engine")
    return {"workers": workers, "queue_limit": queue,
            "timeout_seconds": number(body["timeout_seconds"], "engine.timeout_seconds")}


def _retries(body: Any) -> dict[str, Any]:
    body = _known(body, {"max_attempts", "honour_retry_after", "max_wait_seconds",
                         "total_wait_seconds"}, "connector.retries")
    if not isinstance(body["honour_retry_after"], bool):
        raise _bad("connector.retries.honour_retry_after must be a boolean")
    return {"max_attempts": _count(body["max_attempts"], "connector.retries.max_attempts", 1),
            "honour_retry_after": body["honour_retry_after"],
            "max_wait_seconds": number(body["max_wait_seconds"],
                                       "connector.retries.max_wait_seconds", -1e-9),
            "total_wait_seconds": number(body["total_wait_seconds"],
                                         "connector.retries.total_wait_seconds", -1e-9,
                                         optional=True)}


def connector_section(body: Any) -> dict[str, Any]:
    from sandbox.control_plane import control_plane_section  # it builds on this module

    if isinstance(body, dict):  # written before the control plane and the seed: none, 0
        body = {"control_plane": None, "seed": 0, **body}
    body = _known(body, {"workers", "queue_limit", "timeout_seconds", "retries",
                         "control_plane", "seed"}, "connector")
    workers, queue = slots_of(body, "connector")
    seed = body["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _bad("connector.seed must be a non-negative integer")
    return {"workers": workers, "queue_limit": queue,
            "timeout_seconds": number(body["timeout_seconds"], "connector.timeout_seconds"),
            "retries": _retries(body["retries"]),
            "control_plane": control_plane_section(body["control_plane"]),
            "seed": seed}  # the run seed: which of a tenant's tokens a call uses


def _health(body: Any) -> dict[str, Any]:
    body = _known(body, {"interval_seconds", "failure_threshold", "success_threshold",
                         "timeout_seconds"}, "gateway.health_check")
    where = "gateway.health_check"
    return {"interval_seconds": number(body["interval_seconds"], f"{where}.interval_seconds"),
            "failure_threshold": _count(body["failure_threshold"],
                                        f"{where}.failure_threshold", 1) or 1,
            "success_threshold": _count(body["success_threshold"],
                                        f"{where}.success_threshold", 1) or 1,
            "timeout_seconds": number(body["timeout_seconds"], f"{where}.timeout_seconds")}


def gateway_section(body: Any) -> dict[str, Any]:
    body = _known(body, {"timeout_seconds", "zone_retry", "health_check"}, "gateway")
    if not isinstance(body["zone_retry"], bool):
        raise _bad("gateway.zone_retry must be a boolean")
    return {"timeout_seconds": number(body["timeout_seconds"], "gateway.timeout_seconds"),
            "zone_retry": body["zone_retry"], "health_check": _health(body["health_check"])}
