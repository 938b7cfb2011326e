"""`python -m sandbox up|down|status|bench`."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from labcore.sandbox_client import LOOPBACK_HOSTS, SandboxClient, apply_scenario
from labcore.sandbox_client import SandboxError as ClientError
from labcore.scenario_file import ScenarioError, ScenarioFile, read_scenario
from sandbox import ownership
from sandbox.admin.cli import print_not_honoured
from sandbox.launch import SandboxError, process_table, running_pid, start, stop
from sandbox.state import default_dir
from sandbox.supervise import pid_alive

__all__ = ["build_parser", "main"]


class _Stop(Exception):
    """Raised from the signal handler so the foreground `up` unwinds into `stop`."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def _summary(state: dict[str, object]) -> str:
    keep = ("gateway_url", "admin_url", "prometheus_url", "zones", "providers", "redis",
            "postgres", "pid")
    return json.dumps({k: state[k] for k in keep if k in state}, indent=2)


def _configure(state: dict[str, object], scenario: ScenarioFile | None) -> None:
    """`up --scenario`: the stand-in from the scenario, through the admin API (the same
    path as `python -m sandbox.admin apply-scenario`); what it cannot honour is printed."""
    if scenario is None:
        return
    try:
        answer = apply_scenario(SandboxClient.from_state(state, LOOPBACK_HOSTS), scenario)
    except ClientError as exc:
        raise SandboxError(f"the stand-in refused the scenario: {exc}") from None
    print(f"configured from {answer['scenario']['label']}", flush=True)
    print_not_honoured(answer)


def cmd_up(root: Path, detach: bool, prometheus: bool = True,
           scenario: ScenarioFile | None = None) -> int:
    if running_pid(root) is not None:  # checked before any cleanup could touch it
        print(f"error: a sandbox is already running in {root}", file=sys.stderr)
        return 2
    if root.exists() and not root.is_dir():
        print(f"error: {root} exists and is not a directory", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        state = start(root, prometheus)
        _configure(state, scenario)
        print(_summary(state))
        print(f"state file: {root / 'state.json'}", flush=True)
        if detach:
            return 0
        print("running; Ctrl-C stops everything", flush=True)
        while pid_alive(int(str(state["pid"]))):
            time.sleep(0.5)
        orderly = not (root / "state.json").exists()  # `down` from elsewhere removes it
        print("stopped by down" if orderly else "supervisord exited", file=sys.stderr)
        stop(root)
        return 0 if orderly else 1
    except _Stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(root)
        print("stopped", flush=True)
        return 0
    except (SandboxError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        stop(root)
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_down(root: Path) -> int:
    was_running = running_pid(root) is not None
    killed = stop(root)
    print("stopped" if was_running else "not running", flush=True)
    if killed:
        print(f"killed {len(killed)} leftover processes", file=sys.stderr)
    return 0


def cmd_status(root: Path) -> int:
    """Exit 0 running, 1 stopped, 3 crashed (supervisord gone, some of its processes live)."""
    status = ownership.classify(root)
    if status == "stopped":
        print(f"not running ({root})")
        return 1
    if status == "crashed":
        left = ownership.members(root)
        print(f"crashed: supervisord is gone but {len(left)} of its processes survive "
              f"(PIDs {' '.join(str(i.pid) for i in left)}); `down` or `up` stops them")
        return 3
    for name, statename in sorted(process_table(root).items()):
        print(f"{name:32} {statename}")
    ownership.record_members(root)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox",
                                     description="local stand-in for OmniSQL staging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status", "bench"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=None, help="sandbox dir (default ./.sandbox)")
        if name == "up":
            p.add_argument("--detach", action="store_true", help="return once it is up")
            p.add_argument("--no-prometheus", dest="prometheus", action="store_false",
                           help="do not run Prometheus over the services (issue 17)")
            p.add_argument("--scenario", type=Path, default=None,
                           help="configure the stand-in from this scenario file (issue 18)")
            p.add_argument("--profile", default=None, help="the scenario's profile")
            p.add_argument("--set", dest="overrides", action="append", default=[],
                           metavar="K=V", help="a scenario override (repeatable)")
        if name == "bench":
            p.add_argument("--seconds", type=float, default=10.0)
            p.add_argument("--concurrency", type=int, default=32)
    return parser


def _up(root: Path, args: argparse.Namespace) -> int:
    """Read and validate the scenario before anything starts: exit 2 naming file, field
    and line, as `python -m sim validate` does."""
    if args.scenario is None:
        if args.profile or args.overrides:
            print("error: --profile and --set need --scenario", file=sys.stderr)
            return 2
        return cmd_up(root, args.detach, args.prometheus)
    try:
        scenario = read_scenario(args.scenario, args.profile, args.overrides)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return cmd_up(root, args.detach, args.prometheus, scenario)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse exits 2 on bad input
    root = (args.dir or default_dir()).absolute()
    if args.command == "up":
        return _up(root, args)
    if args.command == "down":
        return cmd_down(root)
    if args.command == "status":
        return cmd_status(root)
    from sandbox.bench import run_bench
    if not 1 <= args.concurrency <= 1000 or not 0 < args.seconds <= 3600:
        print("error: need 1 <= concurrency <= 1000 and 0 < seconds <= 3600", file=sys.stderr)
        return 2
    return run_bench(root, args.seconds, args.concurrency)
