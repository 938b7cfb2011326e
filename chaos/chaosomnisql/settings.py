"""Where an experiment acts: the target, its endpoints, the allowlist, the scenario, the keys.

Everything comes from Chaos Toolkit's ``configuration`` (keys prefixed ``omnisql_``) and
``secrets`` (the ``omnisql`` scope); nothing is read from module-level state. Keys:

``omnisql_target``
    ``sandbox`` (default: the local stand-in) or ``eks`` (real staging).
``omnisql_sandbox_dir``
    The sandbox directory holding ``state.json`` (default ``.sandbox``). Only URLs and
    zones are read from it: API keys come through ``secrets`` even though the file has them.
``omnisql_gateway_url`` / ``omnisql_admin_url``
    Endpoints for the ``eks`` target (the sandbox's are read from its state file).
``omnisql_allowed_hosts``
    Hosts an activity may talk to besides loopback (list or comma-separated string), on top
    of ``$OMNISQL_ALLOWED_HOSTS``: the rule of :mod:`labcore.sandbox_client`, shared with
    the load tests. A staging host must be added explicitly.
``omnisql_scenario`` / ``omnisql_profile``
    The scenario file that holds the thresholds and the load (one source of truth with
    the simulator) and its profile (default ``standin``). A relative path is looked up in
    the working directory, then beside the experiment file (``$OMNISQL_EXPERIMENT_DIR``,
    set by ``python -m chaosomnisql run``): the extension needs no checkout around it.

Secrets: ``omnisql.api_keys``, a JSON object ``{tenant: key}`` (from the environment).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from labcore import sandbox_client

__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "TARGETS",
    "allowed_hosts",
    "api_keys",
    "check_url",
    "endpoints",
    "scenario_file",
    "setting",
    "target_name",
]

TARGETS = ("sandbox", "eks")
DEFAULT_ALLOWED_HOSTS = tuple(sorted(sandbox_client.LOOPBACK_HOSTS))


def setting(configuration: Configuration, key: str, default: Any = None) -> Any:
    """One ``omnisql_<key>`` configuration value, or ``default`` when absent or empty."""
    value = (configuration or {}).get(f"omnisql_{key}")
    return default if value in (None, "") else value


def target_name(configuration: Configuration) -> str:
    """The configured target; anything but ``sandbox``/``eks`` is refused."""
    target = str(setting(configuration, "target", "sandbox"))
    if target not in TARGETS:
        raise ActivityFailed(f"omnisql_target {target!r} is not one of {list(TARGETS)}")
    return target


def allowed_hosts(configuration: Configuration) -> frozenset[str]:
    """Loopback, ``$OMNISQL_ALLOWED_HOSTS`` and ``omnisql_allowed_hosts``."""
    return sandbox_client.allowed_hosts(setting(configuration, "allowed_hosts", ()))


def check_url(url: str, configuration: Configuration) -> str:
    """Return ``url`` if its host is on the allowlist; refuse it otherwise."""
    try:
        sandbox_client.check_url(url, allowed_hosts(configuration), "omnisql_allowed_hosts")
    except sandbox_client.SandboxError as exc:
        raise ActivityFailed(f"refusing {url!r}: {exc}") from None
    return url


def endpoints(configuration: Configuration) -> dict[str, Any]:
    """``{gateway_url, admin_url, zones}`` (and the sandbox's ``admin_token`` if it has
    one) of the target, each URL checked against the allowlist."""
    if target_name(configuration) == "sandbox":
        state = _sandbox_state(str(Path(setting(configuration, "sandbox_dir", _default_dir()))))
    else:
        state = {
            "gateway_url": setting(configuration, "gateway_url"),
            "admin_url": setting(configuration, "admin_url"),
            "zones": list(setting(configuration, "zones", ["az-a", "az-b", "az-c"])),
        }
    for key in ("gateway_url", "admin_url"):
        if not state.get(key):
            raise ActivityFailed(f"no {key} for target {target_name(configuration)}")
        check_url(state[key], configuration)
    return state


def _default_dir() -> str:
    return str(sandbox_client.sandbox_dir())


def _sandbox_state(directory: str) -> dict[str, Any]:
    try:
        state = sandbox_client.read_state(directory)
    except sandbox_client.SandboxError as exc:
        raise ActivityFailed(str(exc)) from None
    if state is None:
        raise ActivityFailed(f"no running sandbox: {Path(directory) / 'state.json'} not found")
    # Addresses and the admin token only: the tenants' API keys in this file reach
    # activities through `secrets`.
    return {k: state[k] for k in ("gateway_url", "admin_url", "zones", "admin_token")
            if k in state}


def api_keys(secrets: Secrets) -> dict[str, str]:
    """``{tenant: api key}`` from ``secrets.omnisql.api_keys`` (a JSON object or a mapping).

    Controls receive every scope (``{"omnisql": {...}}``); an activity declaring
    ``secrets: [omnisql]`` receives that scope's content flattened (``{"api_keys": ...}``).
    """
    secrets = secrets or {}
    raw = (secrets.get("omnisql") or secrets).get("api_keys")
    if not raw:
        raise ActivityFailed("no secrets.omnisql.api_keys (set OMNISQL_API_KEYS)")
    keys = json.loads(raw) if isinstance(raw, str) else dict(raw)
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ActivityFailed("secrets.omnisql.api_keys must be a JSON object {tenant: key}")
    return keys


def scenario_file(configuration: Configuration) -> Any:
    """The scenario (``sim.ScenarioFile``) named by ``omnisql_scenario`` at ``omnisql_profile``."""
    name = setting(configuration, "scenario")
    if not name:
        raise ActivityFailed("no omnisql_scenario in the experiment's configuration")
    return _read(str(resolve_path(name)), str(setting(configuration, "profile", "standin")))


def resolve_path(name: str, experiment_dir: str | None = None) -> Path:
    """A scenario path: as given if absolute or found from the working directory, else
    relative to the experiment's directory (``experiment_dir``, else
    ``$OMNISQL_EXPERIMENT_DIR``); as given otherwise (reading it then says it is missing)."""
    path = Path(name)
    if path.is_absolute() or path.exists():
        return path
    base = experiment_dir or os.environ.get("OMNISQL_EXPERIMENT_DIR")
    beside = Path(base) / path if base else None
    return beside if beside is not None and beside.exists() else path


@lru_cache(maxsize=16)
def _read(path: str, profile: str) -> Any:
    from labcore.scenario_file import read_scenario

    return read_scenario(path, profile=profile or None)
