"""``python -m chaosomnisql``: run an experiment against the sandbox and judge its journal.

    python -m chaosomnisql run chaos/experiments/az_loss.yaml --dir .sandbox [--short]
    eval "$(python -m chaosomnisql env --dir .sandbox)"   # for plain `chaos run`

``run`` passes the tenants' API keys to ``chaos`` through the environment only (the
experiment's ``secrets``), always with ``--no-version-check`` and no log file, reads the
journal, applies the lab's verdict (exit 1 on an action that raised, a skipped method,
a deviation, a failed rollback or a missed RTO/RPO target, even when ``chaos`` exited 0)
and prints the summary. Before anything runs, the twin gate (:mod:`.twin_gate`; on by
default for ``--target eks``, ``--twin-gate`` for the sandbox) predicts the blast radius
with the simulator and refuses a run beyond the experiment's safeguards (``--force``
overrides). Exit 0 pass, 1 fail, 2 bad usage, 3 refused by the twin gate.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labcore.scenario import BlueGreen, Canary

from .twin_gate import EXIT_REFUSED

__all__ = ["SHORT_MODE", "SHORT_TAIL", "TIMEOUT_MARGIN", "Interrupts", "default_timeout", "main",
           "rollback", "sandbox_env", "short_mode"]

#: Short mode for CI: a compressed timeline (10 s warm-up, the first fault at 15 s, a run
#: as long as :func:`short_mode` fits to the scenario, at most 80 s), 4 s stats windows,
#: 8 s sustain, 30 s recovery timeout, 15 s faults, a shorter bulk token refresh; the
#: prediction keeps its 10 replications (a few seconds).
SHORT_MODE = {"OMNISQL_WARMUP": "10", "OMNISQL_WINDOW": "4", "OMNISQL_SUSTAIN": "8",
              "OMNISQL_RECOVERY_TIMEOUT": "30",
              "OMNISQL_PREDICT_REPLICATIONS": "10", "OMNISQL_LOAD_SECONDS": "80",
              "OMNISQL_FAULT_AT": "15", "OMNISQL_FAULT_SECONDS": "15",
              # SOP-103 5 s after the revocation, 10 tokens per tenant (not measured).
              "OMNISQL_OPERATOR_DELAY": "5", "OMNISQL_REFRESH_TOKENS_PER_TENANT": "10", **{
                  # The canary analysis in 10 s windows of at least 5 canary attempts (a
                  # noisier judge than the scenario's), its decision waited for 60 s.
                  "OMNISQL_CANARY_WINDOW": "10", "OMNISQL_CANARY_MIN_SAMPLES": "5",
                  "OMNISQL_CANARY_TIMEOUT": "60"}}
#: Seconds a short run goes on after the method's longest wait ends: one stats window and
#: the after hypothesis's margin.
SHORT_TAIL = 6.0


def short_mode(scenario: Any | None) -> dict[str, str]:
    """:data:`SHORT_MODE` with the run's length fitted to ``scenario``: its last injection
    on the short timeline, then the longest wait the method makes after it (the recovery
    probe's timeout and sustain, the flood's 15 s, a canary's decision wait and
    :data:`.canary.GRACE`, a blue-green drain and :data:`.cutover.GRACE`), then
    :data:`SHORT_TAIL`; never longer than SHORT_MODE's 80 s, which is what a run without a
    scenario (or an unknown one) keeps. An explicit
    ``OMNISQL_LOAD_SECONDS`` in the environment still wins over both."""
    from .canary import GRACE
    from .cutover import GRACE as CUTOVER_GRACE
    from .timeline import scenario_timeline

    if scenario is None:
        return dict(SHORT_MODE)
    timeline = scenario_timeline(scenario, lambda k: SHORT_MODE.get(f"OMNISQL_{k.upper()}"))
    last = timeline.injections[-1] if timeline.injections else timeline.warmup
    waits = [float(SHORT_MODE["OMNISQL_RECOVERY_TIMEOUT"]) + float(SHORT_MODE["OMNISQL_SUSTAIN"]),
             float(SHORT_MODE["OMNISQL_FAULT_SECONDS"])]
    if isinstance(scenario.release, Canary):
        waits.append(float(SHORT_MODE["OMNISQL_CANARY_TIMEOUT"]) + GRACE)
    if isinstance(scenario.release, BlueGreen):
        waits.append(float(scenario.release.drain_timeout) + CUTOVER_GRACE)
    length = min(last + max(waits) + SHORT_TAIL, float(SHORT_MODE["OMNISQL_LOAD_SECONDS"]))
    return {**SHORT_MODE, "OMNISQL_LOAD_SECONDS": f"{length:g}"}


#: Seconds the default ``--timeout`` adds to the run's own length: the stand-in's
#: configuration, the hypotheses, the prediction, the rollbacks (a metadata rebuild runs
#: pg tools) and a loaded machine.
TIMEOUT_MARGIN = 180.0


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
    run.add_argument("--target", choices=("sandbox", "eks"),
                     default=os.environ.get("OMNISQL_TARGET") or "sandbox",
                     help="sandbox (the stand-in in --dir) or eks (OMNISQL_GATEWAY_URL, ...)")
    run.add_argument("--journal", type=Path, help="journal path (default: a temp file)")
    run.add_argument("--timeout", type=float, default=None,
                     help="wall-clock limit, seconds (default: the scenario's run.duration, "
                     "or OMNISQL_LOAD_SECONDS, + a margin for the prediction and rollbacks)")
    gate = run.add_mutually_exclusive_group()
    gate.add_argument("--twin-gate", dest="twin_gate", action="store_true", default=None,
                      help="predict the blast radius first and refuse (exit 3) beyond the "
                      "experiment's safeguards (default: on for eks, off for the sandbox)")
    gate.add_argument("--no-twin-gate", dest="twin_gate", action="store_false")
    run.add_argument("--force", action="store_true",
                     help="run even when the twin gate refuses")
    run.add_argument("--results", type=Path, default=None,
                     help="results folder: facts.npz, summary.json, journal.json "
                     "(default: a temp dir)")
    back = sub.add_parser("rollback", help="play an experiment's rollbacks alone")
    back.add_argument("experiment", type=Path)
    back.add_argument("--dir", type=Path, default=Path(os.environ.get("OMNISQL_SANDBOX_DIR",
                                                                      ".sandbox")))
    env = sub.add_parser("env", help="print export lines for plain `chaos run`")
    env.add_argument("--dir", type=Path, default=Path(".sandbox"))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.command == "run":
        return _run_command(args)
    if not (args.dir / "state.json").exists():
        print(f"no running sandbox in {args.dir} (python -m sandbox up --detach)", file=sys.stderr)
        return 2
    if args.command == "rollback":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the last line of defence: no more cuts
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return rollback(args.experiment)
    for key, value in sandbox_env(args.dir).items():
        print(f"export {key}='{value}'")
    return 0


def _run_command(args: argparse.Namespace) -> int:
    """Check the experiment and its scenario, run the twin gate, then the experiment."""
    from labcore.scenario_file import ScenarioError

    if not args.experiment.exists():
        print(f"no such experiment: {args.experiment}", file=sys.stderr)
        return 2
    try:
        source = _source(args.experiment, args.short)
        if source is not None:
            _preflight(source)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    gate_on = args.target == "eks" if args.twin_gate is None else args.twin_gate
    if source is not None and gate_on and _twin_gate(args, source):
        return EXIT_REFUSED
    if args.target == "sandbox" and not (args.dir / "state.json").exists():
        print(f"no running sandbox in {args.dir} (python -m sandbox up --detach)", file=sys.stderr)
        return 2
    return _run(args, source)


def _source(experiment: Path, short: bool = False) -> Any:
    """The experiment's scenario (``ScenarioFile``) at its profile (``omnisql_profile``, or
    ``$OMNISQL_PROFILE`` where the experiment reads it from the environment, else
    ``standin``); None when the scenario itself comes from the environment. In short mode
    a scenario's ``<profile>_short`` profile is used when it has one (regional_failover's
    timeline of seconds where the standin profile's takes minutes)."""
    import yaml

    from .settings import resolve_path, scenario_file

    config = (yaml.safe_load(experiment.read_text()) or {}).get("configuration") or {}
    name = config.get("omnisql_scenario")
    if not isinstance(name, str):
        return None  # from the environment: the probes read and check it
    profile = config.get("omnisql_profile")
    if isinstance(profile, dict) and profile.get("type") == "env":
        profile = os.environ.get(str(profile.get("key")), profile.get("default"))
    settings = {"omnisql_scenario": str(resolve_path(name, str(experiment.parent))),
                "omnisql_profile": profile if isinstance(profile, str) else "standin"}
    source = scenario_file(settings)
    shorter = f"{settings['omnisql_profile']}_short"
    if short and shorter in (source.data.get("profiles") or {}):
        source = scenario_file({**settings, "omnisql_profile": shorter})
    return source


def _preflight(source: Any) -> None:
    """Refuse the experiment's scenario before anything runs if a check names a metric or
    scope the registry does not know (``labcore.preflight``: raises ``ScenarioError``)."""
    from labcore.preflight import check_checks

    check_checks(source, "chaos")


def _twin_gate(args: argparse.Namespace, source: Any) -> bool:
    """Run the twin gate (:mod:`.twin_gate`) and print its figures; True: refuse the run
    (the gate refused and ``--force`` was not given). Nothing has been injected yet."""
    import yaml

    from .twin_gate import run_gate, safeguards

    env = {**short_mode(source.scenario), **os.environ} if args.short else dict(os.environ)
    config = (yaml.safe_load(args.experiment.read_text()) or {}).get("configuration") or {}
    result = run_gate(source, safeguards(config, source.scenario, env),
                      int(env.get("OMNISQL_PREDICT_REPLICATIONS") or 10))
    print(result.render(), flush=True)
    if result.refused and args.force:
        print("twin gate overridden by --force: running anyway", flush=True)
    return result.refused and not args.force


def default_timeout(scenario: Any, env: dict[str, str]) -> float:
    """The wrapper's default wall-clock limit: the run's length on the scenario's timeline
    (:mod:`.timeline`: ``run.duration``, or ``OMNISQL_LOAD_SECONDS`` in ``env``, short mode
    included), which every wait of the method ends by, plus :data:`TIMEOUT_MARGIN` for
    what comes before and after it (the prediction, the rollbacks)."""
    from .timeline import scenario_timeline

    def get(key: str) -> str | None:
        return env.get(f"OMNISQL_{key.upper()}")

    return scenario_timeline(scenario, get).duration + TIMEOUT_MARGIN


def _env(args: argparse.Namespace, results: Path, source: Any = None) -> dict[str, str]:
    """The ``chaos`` process's environment: the target, keys, short mode (with the profile
    :func:`_source` chose), results."""
    env = {**os.environ, "OMNISQL_EXPERIMENT_DIR": str(args.experiment.resolve().parent),
           "OMNISQL_RESULTS_DIR": str(results.resolve())}
    if args.short and source is not None and source.profile:
        env["OMNISQL_PROFILE"] = source.profile
    env.update(sandbox_env(args.dir) if args.target == "sandbox" else {"OMNISQL_TARGET": "eks"})
    short = short_mode(None if source is None else source.scenario)
    return {**short, **env} if args.short else env


def _run(args: argparse.Namespace, source: Any) -> int:
    results = args.results or Path(tempfile.mkdtemp(prefix="omnisql-chaos-"))
    env = _env(args, results, source)
    journal = args.journal or results / "journal.json"
    timeout = args.timeout
    if timeout is None:
        timeout = default_timeout(source.scenario, env) if source is not None else 1800.0
    cmd = ["chaos", "--no-version-check", "--no-log-file", "run", "--journal-path",
           str(journal), str(args.experiment)]
    # A session of its own: a signal to our process group (Ctrl-C, `kill -- -PGID`) reaches
    # us only, and we alone decide what chaos receives (exactly one SIGINT).
    proc = subprocess.Popen(cmd, env=env, preexec_fn=interruptible, start_new_session=True)
    guard = Interrupts(proc)
    code = guard.supervise(timeout)
    if guard.requested:
        _finish_interrupted(journal, args.experiment, env, guard)
    return _judge(journal, code, args.experiment.resolve().parent)


def interruptible() -> None:
    """In the child before exec: SIGINT back to its default disposition.

    A process started in the background by a non-interactive shell (``cmd &``, nohup,
    some CI runners) inherits SIGINT *ignored*, and Python then installs no
    KeyboardInterrupt handler: our SIGINT, the one signal that makes Chaos Toolkit stop
    and play its rollbacks, would be lost and the fault left in place."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Interrupts:
    """Every SIGINT/SIGTERM to the wrapper, first or repeated, becomes one SIGINT to chaos.

    SIGINT, not SIGTERM: Chaos Toolkit raises SIGTERM as an exception inside the running
    Python activity, which only fails that activity and lets the method carry on; SIGINT
    (KeyboardInterrupt) interrupts the run, which then plays its rollbacks. Only one: a second
    KeyboardInterrupt during the rollbacks makes Chaos Toolkit skip the remaining ones."""

    #: How long interrupted rollbacks may take (promotion and rebuild run pg tools).
    ROLLBACK_SECONDS = 240.0

    def __init__(self, proc: subprocess.Popen[Any]) -> None:
        self.proc = proc
        self.signals: list[str] = []  # every signal received, in order ("timeout" too)
        self.first_at: str | None = None

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    def interrupt(self, why: str) -> None:
        self.signals.append(why)
        if len(self.signals) > 1:
            print(f"{why} again: already interrupting; the rollbacks play to the end",
                  file=sys.stderr, flush=True)
            return
        self.first_at = datetime.now(UTC).isoformat(timespec="seconds")
        print(f"{why}: interrupting chaos (rollbacks run; the verdict will be FAIL)",
              file=sys.stderr, flush=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.interrupt(signal.Signals(signum).name)

    def supervise(self, timeout: float) -> int:
        """Wait for chaos with our handlers in place; chaos's exit code."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"chaos ran over {timeout:g} s", file=sys.stderr)
                self.interrupt("timeout")
            try:
                return self.proc.wait(timeout=self.ROLLBACK_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                return self.proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def record(self) -> dict[str, Any]:
        return {"requested": True, "signals": self.signals, "first_at": self.first_at}


def _rollbacks_done(journal: dict[str, Any] | None, experiment: Path) -> bool:
    import yaml

    declared = [r.get("name") for r in (yaml.safe_load(experiment.read_text()) or {})
                .get("rollbacks", [])]
    played = (journal or {}).get("rollbacks") or []
    names = [r.get("activity", {}).get("name") for r in played]
    return names == declared and all(r.get("status") == "succeeded" for r in played)


def _finish_interrupted(journal_path: Path, experiment: Path, env: dict[str, str],
                        guard: Interrupts) -> None:
    """Record the interrupt in the journal and, if chaos did not play every rollback (killed,
    or interrupted mid-rollback by someone else), play them again (they are idempotent)."""
    try:
        journal: dict[str, Any] | None = json.loads(journal_path.read_text())
    except (OSError, ValueError):
        journal = None
    note = guard.record()
    if not _rollbacks_done(journal, experiment):
        print("rollbacks incomplete: playing them again", file=sys.stderr, flush=True)
        replay = subprocess.run([sys.executable, "-m", "chaosomnisql", "rollback",
                                 str(experiment)], env=env, start_new_session=True,
                                check=False, timeout=Interrupts.ROLLBACK_SECONDS,
                                capture_output=True, text=True)
        note["rollbacks_replayed"] = replay.stdout.split()
        note["replay_exit"] = replay.returncode
        if replay.returncode:
            print(replay.stderr[-2000:], file=sys.stderr)
    journal = journal or {"status": "interrupted", "experiment": {}, "rollbacks": []}
    journal["omnisql_interrupt"] = note
    journal_path.parent.mkdir(parents=True, exist_ok=True)  # chaos may have written nothing
    journal_path.write_text(json.dumps(journal, indent=2, default=str))


def rollback(experiment: Path) -> int:
    """Play the experiment's rollbacks alone (``python -m chaosomnisql rollback EXP``);
    prints ``name=status`` per rollback; exit 0 when all succeeded."""
    from chaoslib.configuration import load_configuration
    from chaoslib.loader import load_experiment
    from chaoslib.rollback import run_rollbacks
    from chaoslib.secret import load_secrets

    exp = load_experiment(str(experiment))
    config = load_configuration(exp.get("configuration", {}))
    secrets = load_secrets(exp.get("secrets", {}), config)
    ok = True
    for run in run_rollbacks(exp, config, secrets, None, None):
        status = run.get("status") if isinstance(run, dict) else "background"
        print(f"{run['activity']['name']}={status}", flush=True)
        ok = ok and status == "succeeded"
    return 0 if ok else 1


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
    config = journal.get("experiment", {}).get("configuration", {})
    if summary is None and "omnisql_scenario" in config:  # no verdict control loaded
        from labcore.scenario_file import read_scenario

        where = str(experiment_dir) if experiment_dir else None
        scenario = read_scenario(resolve_path(config["omnisql_scenario"], where), profile="standin")
        summary = build_summary(journal, scenario, None)
        print(render(summary))
    reasons = list((summary or {}).get("reasons") or verdict(journal))
    interrupt = journal.get("omnisql_interrupt")
    if interrupt:  # whatever chaos wrote: an interrupted run never passes
        reasons.insert(0, f"interrupt requested ({', '.join(interrupt['signals'])})")
    print(f"journal: {journal_path}")
    if reasons or chaos_code != 0:
        print(f"FAIL (chaos exit {chaos_code}): " + "; ".join(reasons or ["chaos failed"]))
        return 1
    print("PASS")
    return 0
