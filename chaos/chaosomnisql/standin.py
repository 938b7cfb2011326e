"""The stand-in from the experiment's scenario (issue 18), applied before anything starts.

On the ``sandbox`` target the scenario at its profile (``omnisql_scenario``,
``omnisql_profile``) configures the stand-in through ``POST /admin/scenario``
(:func:`labcore.sandbox_client.apply_scenario`): worker slots, provider latency and limits,
cache, caps, gateway timeout and health checks. Every field the stand-in cannot honour is
logged by name. The ``eks`` target is real staging: it is configured by its own deployment,
never from here.
"""

from __future__ import annotations

import logging
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration

from labcore.sandbox_client import SandboxClient, SandboxError, apply_scenario

from .settings import endpoints, scenario_file, target_name

__all__ = ["configure_standin"]
logger = logging.getLogger("chaostoolkit")


def configure_standin(configuration: Configuration = None) -> dict[str, Any] | None:
    """Apply the scenario to the sandbox; the stand-in's answer (None for ``eks``)."""
    if target_name(configuration) != "sandbox":
        return None
    target = endpoints(configuration)
    client = SandboxClient(target["admin_url"], target.get("admin_token"), 60.0)
    try:
        answer: dict[str, Any] = apply_scenario(client, scenario_file(configuration))
    except SandboxError as exc:
        raise ActivityFailed(f"the stand-in refused the scenario: {exc}") from None
    reasons = answer.get("reasons") or {}
    logger.info(f"omnisql: stand-in configured from {answer['scenario']['label']}")
    for path in answer.get("not_honoured") or []:
        logger.warning(f"omnisql: the stand-in cannot honour {path}: {reasons.get(path, '')}")
    return answer
