"""`python -m sandbox.admin [--dir DIR] <command>`: the control-plane CLI the runbooks use.

Each command is one call to the admin/fault API on `admin_url` from `DIR/state.json`; the JSON
answer is printed. Exit 0 on 2xx, 1 on an error answer, 2 on bad usage or no sandbox.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from labcore.sandbox_client import scenario_body
from labcore.scenario_file import ScenarioError, read_scenario
from sandbox.state import default_dir, load_state

__all__ = ["build_parser", "main", "print_not_honoured", "to_call"]

Call = tuple[str, str, dict[str, Any] | None]


def _onoff(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError("expected on or off")
    return value == "on"


def _add(sub: Any, name: str, *args: tuple[str, dict[str, Any]]) -> None:
    p = sub.add_parser(name)
    for flag, kw in args:
        p.add_argument(flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.admin")
    parser.add_argument("--dir", type=Path, default=None)
    top = parser.add_subparsers(dest="group", required=True)
    top.add_parser("status")
    _add(top, "stats", ("--window", {"type": float, "default": 30.0}))
    caps = top.add_parser("caps").add_subparsers(dest="action", required=True)
    _add(caps, "set", ("tenant", {}), ("user", {}), ("n", {"type": int}))
    _add(caps, "clear", ("tenant", {}), ("user", {}))
    caps.add_parser("list")
    cache = top.add_parser("cache").add_subparsers(dest="action", required=True)
    _add(cache, "invalidate", ("--tenant", {}))
    _add(cache, "options", ("--soft-cache", {"type": _onoff}), ("--coalesce", {"type": _onoff}),
         ("--ttl-seconds", {"type": float}))
    tokens = top.add_parser("tokens").add_subparsers(dest="action", required=True)
    _add(tokens, "refresh", ("provider", {}))
    canary = top.add_parser("canary").add_subparsers(dest="action", required=True)
    _add(canary, "deploy", ("version", {}), ("weight", {"type": float}),
         ("--error-rate", {"type": float}), ("--latency-multiplier", {"type": float}))
    canary.add_parser("rollback")
    canary.add_parser("status")
    release = top.add_parser("release").add_subparsers(dest="action", required=True)
    _add(release, "cutover", ("version", {}), ("drain_timeout", {"type": float}))
    release.add_parser("status")
    meta = top.add_parser("metadata").add_subparsers(dest="action", required=True)
    meta.add_parser("status")
    meta.add_parser("promote")
    meta.add_parser("rebuild")
    _add(meta, "write", ("n", {"type": int}))
    meta.add_parser("writes")
    meta.add_parser("lag")
    meta.add_parser("snapshots")
    _fault_parsers(top.add_parser("faults").add_subparsers(dest="action", required=True))
    _scenario_parsers(top)
    return parser


def _fault_parsers(faults: Any) -> None:
    faults.add_parser("list")
    faults.add_parser("reset")
    _add(faults, "lose-az", ("zone", {}))
    _add(faults, "restore-az", ("zone", {}))
    _add(faults, "provider", ("name", {}), ("--latency-ms", {"type": float}),
         ("--rate-limit", {"type": float}), ("--outage", {"action": "store_true"}))
    _add(faults, "provider-clear", ("name", {}))
    _add(faults, "expire-tokens", ("provider", {}), ("--fraction", {"type": float}))
    faults.add_parser("kill-primary")
    _add(faults, "lose-region", ("--blackhole", {"action": "store_true", "default": None}))


def _scenario_parsers(top: Any) -> None:
    top.add_parser("config")
    p = top.add_parser("apply-scenario", help="configure the stand-in from a scenario file")
    p.add_argument("file", type=Path)
    p.add_argument("--profile", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")


def _some(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _fault_call(a: argparse.Namespace) -> Call:
    simple: dict[str, Call] = {
        "list": ("GET", "/faults", None), "reset": ("POST", "/faults/reset", None),
        "kill-primary": ("POST", "/faults/metadata/primary/kill", None),
    }
    if a.action in simple:
        return simple[a.action]
    if a.action in ("lose-az", "restore-az"):
        return ("POST", f"/faults/az/{a.zone}/{a.action.split('-')[0]}", None)
    if a.action == "provider":
        return ("POST", f"/faults/provider/{a.name}", _some(
            latency_ms=a.latency_ms, rate_limit_per_s=a.rate_limit, outage=a.outage or None))
    if a.action == "provider-clear":
        return ("DELETE", f"/faults/provider/{a.name}", None)
    if a.action == "lose-region":  # the applied scenario's failover (docs/sandbox.md)
        return ("POST", "/faults/region/lose", _some(blackhole=a.blackhole))
    return ("POST", "/faults/tokens/expire", _some(provider=a.provider, fraction=a.fraction))


def to_call(a: argparse.Namespace) -> Call:
    """The HTTP call a parsed command stands for."""
    g, act = a.group, getattr(a, "action", None)
    table: dict[tuple[str, str | None], Any] = {
        ("status", None): lambda: ("GET", "/admin/status", None),
        ("config", None): lambda: ("GET", "/admin/config", None),
        ("apply-scenario", None): lambda: ("POST", "/admin/scenario",
                                           scenario_body(read_scenario(a.file, a.profile,
                                                                       a.overrides))),
        ("stats", None): lambda: ("GET", f"/v1/stats?window={a.window:g}", None),
        ("caps", "set"): lambda: ("POST", "/admin/caps",
                                  {"tenant": a.tenant, "user": a.user, "max_concurrency": a.n}),
        ("caps", "clear"): lambda: ("POST", "/admin/caps",
                                    {"tenant": a.tenant, "user": a.user, "max_concurrency": None}),
        ("caps", "list"): lambda: ("GET", "/admin/caps", None),
        ("cache", "invalidate"): lambda: ("POST", "/admin/cache/invalidate",
                                          _some(tenant=a.tenant)),
        ("cache", "options"): lambda: ("POST", "/admin/cache/options",
                                       _some(
            soft_cache=a.soft_cache, coalesce=a.coalesce, ttl_seconds=a.ttl_seconds)),
        ("tokens", "refresh"): lambda: ("POST", "/admin/tokens/refresh",
                                        {"provider": a.provider}),
        ("canary", "deploy"): lambda: ("POST", "/admin/canary", _some(
            version=a.version, weight=a.weight, error_rate=a.error_rate,
            latency_multiplier=a.latency_multiplier)),
        ("canary", "rollback"): lambda: ("DELETE", "/admin/canary", None),
        ("canary", "status"): lambda: ("GET", "/admin/canary", None),
        ("release", "cutover"): lambda: ("POST", "/admin/release/cutover", {
            "version": a.version, "drain_timeout": a.drain_timeout}),
        ("release", "status"): lambda: ("GET", "/admin/release", None),
        ("metadata", "status"): lambda: ("GET", "/admin/metadata/status", None),
        ("metadata", "promote"): lambda: ("POST", "/admin/metadata/promote", None),
        ("metadata", "rebuild"): lambda: ("POST", "/admin/metadata/rebuild", None),
        ("metadata", "write"): lambda: ("POST", "/admin/metadata/writes", {"n": a.n}),
        ("metadata", "writes"): lambda: ("GET", "/admin/metadata/writes", None),
        ("metadata", "lag"): lambda: ("GET", "/admin/metadata/lag", None),
        ("metadata", "snapshots"): lambda: ("GET", "/admin/metadata/snapshots", None),
    }
    if g == "faults":
        return _fault_call(a)
    result: Call = table[(g, act)]()
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = (args.dir or default_dir()).absolute()
    try:  # a bad scenario is reported first, with or without a sandbox
        method, path, body = to_call(args)
    except ScenarioError as exc:  # file:line: field: message, one line per problem
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        state = load_state(root)
        admin_url, token = state["admin_url"], state.get("admin_token", "")
    except (FileNotFoundError, ValueError, KeyError):
        print(f"error: no running sandbox in {root} (python -m sandbox up)", file=sys.stderr)
        return 2
    try:
        resp = httpx.request(method, admin_url + path, json=body, timeout=60.0,
                             headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        print(f"error: admin API unreachable: {type(exc).__name__}", file=sys.stderr)
        return 1
    try:
        answer = resp.json()
        print(json.dumps(answer, indent=2))
    except ValueError:
        print(resp.text)
        answer = None
    if args.group == "apply-scenario" and isinstance(answer, dict) and resp.status_code < 400:
        print_not_honoured(answer)
    return 0 if resp.status_code < 400 else 1


def print_not_honoured(answer: dict[str, Any]) -> None:
    """The fields the stand-in cannot act out, by name, on stderr (never silently)."""
    reasons = answer.get("reasons") or {}
    gaps = answer.get("not_honoured") or []
    print(f"the stand-in cannot honour {len(gaps)} field(s) of this scenario"
          + (":" if gaps else ""), file=sys.stderr)
    for path in gaps:
        print(f"  {path}: {reasons.get(path, '')}", file=sys.stderr)
