"""`python -m sandbox.serve SERVICE --dir DIR [...]`: how supervisord starts each service.

Every service reads its ports and peers from `DIR/sandbox.json`, which `up` writes before
supervisord starts, so the command lines hold no secrets.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sandbox.auth import OPEN_PATHS, TokenGuard
from sandbox.service import run_app
from sandbox.standin import STANDIN_FILE
from sandbox.state import load_state, read_json_file

__all__ = ["main"]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _standin(args: argparse.Namespace, section: str) -> Any:
    """This service's section of the applied scenario's configuration (None: defaults), so
    that a restarted service (a restored zone) comes back configured."""
    config = read_json_file(Path(args.dir) / STANDIN_FILE)
    return None if config is None else config.get(section)


def _internal_only(app: Any, state: dict[str, Any]) -> TokenGuard:
    """Engines and connectors answer only the gateway, engines and the admin service."""
    return TokenGuard(app, lambda path: path not in OPEN_PATHS,
                      internal=state["internal"]["service_token"])


def _mock(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.mock_saas import Provider, build_app
    clients = state["internal"]["oauth_clients"]
    section = (_standin(args, "providers") or {}).get(args.name)
    app = TokenGuard(build_app(Provider(args.name, dict(clients), section=section)),
                     lambda path: path.startswith("/_control"),
                     internal=state["internal"]["service_token"])
    run_app(app, _port(state["providers"][args.name]))


def _connector(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.connector import ConnectorConfig, build_app
    internal = state["internal"]
    config = ConnectorConfig(args.zone, dict(state["providers"]), dict(internal["oauth_clients"]),
                             state["redis"]["port"], internal["redis_password"],
                             internal["service_token"], internal["token_key"],
                             settings=_standin(args, "connector"))
    run_app(_internal_only(build_app(config), state),
            _port(state["services"][f"connector-{args.zone}"]))


def _engine(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.engine import EngineConfig, build_app
    services, internal = state["services"], state["internal"]
    section = _standin(args, "engine") or {}
    config = EngineConfig(args.zone, args.name, "v1", services[f"connector-{args.zone}"],
                          state["redis"]["port"], internal["redis_password"],
                          internal["service_token"], section.get("timeout_seconds", 9.0),
                          section.get("workers"), section.get("queue_limit"))
    run_app(_internal_only(build_app(config), state), _port(services[args.name]))


def _pg_ports(state: dict[str, Any]) -> list[int]:
    return [state["postgres"]["primary"]["port"], state["postgres"]["replica"]["port"]]


def _gateway(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.gateway import GatewayConfig, build_app
    services = state["services"]
    internal = state["internal"]
    config = GatewayConfig({z: services[f"engine-{z}"] for z in state["zones"]},
                           services["engine-canary"], internal["canary_zone"],
                           _pg_ports(state), internal["service_token"],
                           settings=_standin(args, "gateway"),
                           green={z: services[f"engine-green-{z}"] for z in state["zones"]
                                  if f"engine-green-{z}" in services})
    inside = _port(internal["gateway_internal_url"])

    def elsewhere(scope: dict[str, Any]) -> bool:
        # /internal/* exists only on the internal listener; the public one says 404.
        on_inside = (scope.get("server") or ("", 0))[1] == inside
        return scope["path"].startswith("/internal/") != on_inside and scope["path"] not in \
            OPEN_PATHS

    app = TokenGuard(build_app(config), lambda path: path.startswith("/internal/"),
                     internal=internal["service_token"], hidden=elsewhere)
    run_app(app, _port(state["gateway_url"]), inside)


def _admin(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.admin.app import build_app
    run_app(build_app(Path(args.dir), state), _port(state["admin_url"]))


SERVICES = {"mock": _mock, "connector": _connector, "engine": _engine,
            "gateway": _gateway, "admin": _admin}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.serve")
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("--dir", required=True)
    parser.add_argument("--zone", default="")
    parser.add_argument("--name", default="")
    args = parser.parse_args(argv)
    SERVICES[args.service](load_state(Path(args.dir), internal=True), args)


if __name__ == "__main__":
    main()
