"""``python -m chaosomnisql``: run an experiment against the sandbox and judge its journal.

    python -m chaosomnisql run chaos/experiments/az_loss.yaml --dir .sandbox [--short]
    eval "$(python -m chaosomnisql env --dir .sandbox)"   # for plain `chaos run`

``run`` passes the tenants' API keys to ``chaos`` through the environment only (the
experiment's ``secrets``), always with ``--no-version-check`` and no log file, reads the
journal, applies the lab's verdict (exit 1 on an action that raised, a skipped method,
a deviation, a failed rollback or a missed RTO/RPO target, even when ``chaos`` exited 0)
and prints the summary. Exit 0 pass, 1 fail, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["SHORT_MODE", "main", "sandbox_env"]

#: Short mode for CI: 10 s warm-up, 4 s stats windows, 8 s sustain, 30 s recovery timeout,
#: 15 s faults, 2 predictions.
SHORT_MODE = {"OMNISQL_WARMUP": "10", "OMNISQL_WINDOW": "4", "OMNISQL_SUSTAIN": "8",
              "OMNISQL_RECOVERY_TIMEOUT": "30",
              "OMNISQL_PREDICT_REPLICATIONS": "2", "OMNISQL_LOAD_SECONDS": "120",
              "OMNISQL_FAULT_SECONDS": "15"}


def sandbox_env(directory: Path) -> dict[str, str]:
    """Environment for an experiment against the sandbox in ``directory``."""
    state = json.loads((directory / "state.json").read_text())
    keys = {tenant: t["api_key"] for tenant, t in state["tenants"].items()}
    return {"OMNISQL_TARGET": "sandbox", "OMNISQL_SANDBOX_DIR": str(directory.resolve()),
            "OMNISQL_API_KEYS": json.dumps(keys)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chaosomnisql")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment and judge its journal")
    run.add_argument("experiment", type=Path)
    run.add_argument("--dir", type=Path, default=Path(os.environ.get("OMNISQL_SANDBOX_DIR",
                                                                     ".sandbox")))
    run.add_argument("--short", action="store_true", help="CI mode: small windows")
    run.add_argument("--journal", type=Path, help="journal path (default: a temp file)")
    run.add_argument("--timeout", type=float, default=600.0, help="wall-clock limit, seconds")
    env = sub.add_parser("env", help="print export lines for plain `chaos run`")
    env.add_argument("--dir", type=Path, default=Path(".sandbox"))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if not (args.dir / "state.json").exists():
        print(f"no running sandbox in {args.dir} (python -m sandbox up --detach)", file=sys.stderr)
        return 2
    if args.command == "env":
        for key, value in sandbox_env(args.dir).items():
            print(f"export {key}='{value}'")
        return 0
    if not args.experiment.exists():
        print(f"no such experiment: {args.experiment}", file=sys.stderr)
        return 2
    problem = _preflight(args.experiment)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    return _run(args)


def _preflight(experiment: Path) -> str | None:
    """Refuse the experiment's scenario before anything runs if a check names a metric or
    scope the registry does not know (``labcore.preflight``); None if it is fine."""
    import yaml

    from labcore.preflight import check_checks
    from labcore.scenario_file import ScenarioError

    from .settings import resolve_path, scenario_file

    config = (yaml.safe_load(experiment.read_text()) or {}).get("configuration") or {}
    name = config.get("omnisql_scenario")
    if not isinstance(name, str):
        return None  # from the environment: the probes read and check it
    profile = config.get("omnisql_profile")
    settings = {"omnisql_scenario": str(resolve_path(name, str(experiment.parent))),
                "omnisql_profile": profile if isinstance(profile, str) else "standin"}
    try:
        check_checks(scenario_file(settings), "chaos")
    except ScenarioError as exc:
        return f"error: {exc}"
    return None


def _run(args: argparse.Namespace) -> int:
    env = {**os.environ, **sandbox_env(args.dir),
           "OMNISQL_EXPERIMENT_DIR": str(args.experiment.resolve().parent)}
    if args.short:
        env = {**SHORT_MODE, **env}
    journal = args.journal or Path(tempfile.mkdtemp(prefix="omnisql-chaos-")) / "journal.json"
    cmd = ["chaos", "--no-version-check", "--no-log-file", "run", "--journal-path",
           str(journal), str(args.experiment)]
    code = _supervise(subprocess.Popen(cmd, env=env, preexec_fn=interruptible), args.timeout)
    return _judge(journal, code, args.experiment.resolve().parent)


def interruptible() -> None:
    """In the child before exec: SIGINT back to its default disposition.

    A process started in the background by a non-interactive shell (``cmd &``, nohup,
    some CI runners) inherits SIGINT *ignored*, and Python then installs no
    KeyboardInterrupt handler: our SIGINT, the one signal that makes Chaos Toolkit stop
    and play its rollbacks, would be lost and the fault left in place."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _supervise(proc: subprocess.Popen[Any], timeout: float) -> int:
    """Wait for ``chaos``; on our SIGTERM or the timeout, interrupt it with SIGINT.

    SIGINT, not SIGTERM: Chaos Toolkit raises SIGTERM as an exception inside the running
    Python activity, which only fails that activity and lets the method carry on; SIGINT
    (KeyboardInterrupt) interrupts the run, which then plays its rollbacks."""
    def forward(signum: int, frame: Any) -> None:
        proc.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"chaos ran over {timeout:g} s: interrupting (rollbacks run)", file=sys.stderr)
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached chaos too (same process group): let it roll back
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _judge(journal_path: Path, chaos_code: int, experiment_dir: Path | None = None) -> int:
    from .settings import resolve_path
    from .summary import build_summary, render
    from .verdict import verdict

    try:
        journal = json.loads(journal_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        print(f"FAIL: chaos exited {chaos_code} without a journal", file=sys.stderr)
        return 1
    summary = journal.get("omnisql_summary")
    if summary is None:  # the experiment did not load the verdict control
        from labcore.scenario_file import read_scenario

        config = journal["experiment"].get("configuration", {})
        where = str(experiment_dir) if experiment_dir else None
        scenario = read_scenario(resolve_path(config["omnisql_scenario"], where), profile="standin")
        summary = build_summary(journal, scenario, None)
        print(render(summary))
    reasons = summary["reasons"] or verdict(journal)
    print(f"journal: {journal_path}")
    if reasons or chaos_code != 0:
        print(f"FAIL (chaos exit {chaos_code}): " + "; ".join(reasons or ["chaos failed"]))
        return 1
    print("PASS")
    return 0
