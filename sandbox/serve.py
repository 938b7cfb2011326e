"""`python -m sandbox.serve SERVICE --dir DIR [...]`: how supervisord starts each service.

Every service reads its ports and peers from `DIR/sandbox.json`, which `up` writes before
supervisord starts, so the command lines hold no secrets.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sandbox.service import run_app
from sandbox.state import load_state

__all__ = ["main"]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _mock(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.mock_saas import Provider, build_app
    clients = state["internal"]["oauth_clients"]
    run_app(build_app(Provider(args.name, dict(clients))), _port(state["providers"][args.name]))


def _connector(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.connector import ConnectorConfig, build_app
    config = ConnectorConfig(args.zone, dict(state["providers"]),
                             dict(state["internal"]["oauth_clients"]), state["redis"]["port"])
    run_app(build_app(config), _port(state["services"][f"connector-{args.zone}"]))


def _engine(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.engine import EngineConfig, build_app
    services = state["services"]
    config = EngineConfig(args.zone, args.name, "v1", services[f"connector-{args.zone}"],
                          state["redis"]["port"])
    run_app(build_app(config), _port(services[args.name]))


def _pg_ports(state: dict[str, Any]) -> list[int]:
    return [state["postgres"]["primary"]["port"], state["postgres"]["replica"]["port"]]


def _gateway(state: dict[str, Any], args: argparse.Namespace) -> None:
    from sandbox.gateway import GatewayConfig, build_app
    services = state["services"]
    config = GatewayConfig({z: services[f"engine-{z}"] for z in state["zones"]},
                           services["engine-canary"], state["internal"]["canary_zone"],
                           _pg_ports(state))
    run_app(build_app(config), _port(state["gateway_url"]))


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
