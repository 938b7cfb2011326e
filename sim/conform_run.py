"""``python -m sim conform SCENARIO... --runner chaos|locust``: predict, run, compare.

Per scenario: N replications of the simulator at the profile (:mod:`sim.conform`), then
the real runner against the stand-in in ``--dir`` (Locust headless with its results dir;
the chaos wrapper with ``--results``), then its ``facts.npz`` and ``summary.json`` read
back. Writes ``OUT/conformance.json``, ``OUT/<scenario>/overlay.png`` (the prediction
band of single runs beside the measured windows, one panel per check), the simulator's
run folder ``OUT/<scenario>/sim`` and the runner's ``OUT/<scenario>/<runner>``.

Exit 0 when every compared verdict agrees, 1 otherwise, 2 for bad input (unknown runner,
no stand-in in ``--dir``, a scenario error with file/field/line, checked before anything
runs; or a runner refusing a scenario: the others are still compared and written).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from labcore.facts import load_facts
from labcore.scenario import BlueGreen, Scenario, TokenRefresh, TrafficSurge, UserCapMitigation
from labcore.scenario_file import ScenarioError, ScenarioFile, read_scenario

from .conform import CheckComparison, compare, measure, overall, predict, runner_not_measured
from .humanize import make_console

__all__ = ["ConformError", "add_parser", "run_command"]

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "chaos" / "experiments"
#: Seconds a runner may take beyond the scenario's own length (start-up, warm-up, gate).
RUNNER_MARGIN = 300.0
#: Seconds the chaos wrapper's ``--timeout`` leaves before the runner's limit: its
#: interruption, rollbacks (a metadata rebuild) and verdict.
ROLLBACK_MARGIN = 120.0


class ConformError(Exception):
    """Bad input found outside a scenario file (no stand-in, a runner refusing): exit 2."""


def add_parser(sub: Any) -> None:
    conform = sub.add_parser("conform", help="the simulator's prediction beside a real "
                             "runner's measurement on the stand-in, check by check")
    conform.add_argument("scenarios", type=Path, nargs="+")
    conform.add_argument("--runner", required=True, choices=["chaos", "locust"])
    conform.add_argument("--dir", type=Path, default=Path(os.environ.get(
        "OMNISQL_SANDBOX_DIR", ".sandbox")), help="the stand-in's directory (state.json)")
    conform.add_argument("--replications", "-R", type=int, default=10,
                         help="simulator replications (default 10)")
    conform.add_argument("--profile", default="standin",
                         help="scenario profile of both runs (default standin; '' for none)")
    conform.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="PATH=VALUE", help="override a scenario value in both runs")
    conform.add_argument("--calibration", type=Path, metavar="FILE",
                         help="a calibration overlay for the simulator's side (python -m sim "
                         "calibrate)")
    conform.add_argument("--out", type=Path, default=Path("runs") / "conform",
                         help="results folder (default runs/conform)")
    conform.add_argument("--jobs", "-j", type=int, default=1,
                         help="simulator worker processes (default 1)")


def run_command(args: argparse.Namespace, console: Console) -> int:
    """The command: every scenario read and checked first, then predicted, run, compared."""
    if args.replications < 2:
        raise ConformError("--replications must be at least 2 (a prediction interval)")
    if not (args.dir / "state.json").exists():
        raise ConformError(f"{args.dir}: no running stand-in (python -m sandbox up "
                           f"--detach --dir {args.dir})")
    pairs = _sources(args, console)
    report: dict[str, Any] = {"runner": args.runner, "profile": args.profile,
                              "overrides": list(args.overrides),
                              "calibration": str(args.calibration) if args.calibration else None,
                              "replications": args.replications, "scenarios": []}
    agree = True
    for source, sim_source in pairs:
        entry = _one(source, sim_source, args, console)
        report["scenarios"].append(entry)
        agree = agree and entry["agree"]
    report["agree"] = agree
    refused = [e["scenario"] for e in report["scenarios"] if e["runner_exit"] == 2]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conformance.json").write_text(
        json.dumps(_json_safe(report), indent=2, sort_keys=True) + "\n")
    colour = "green" if agree else "bold red"
    console.print(f"[{colour}]{'every verdict agrees' if agree else 'verdicts disagree'}"
                  f"[/{colour}]; {args.out / 'conformance.json'}", highlight=False)
    if refused:  # bad input for the runner: the others were still compared and written
        console.print(f"[bold red]error:[/bold red] the {args.runner} runner refused "
                      f"{', '.join(refused)} (exit 2)", highlight=False)
        return 2
    return 0 if agree else 1


def _sources(args: argparse.Namespace, console: Console,
             ) -> list[tuple[ScenarioFile, ScenarioFile]]:
    """Each scenario as the runner runs it and as the simulator predicts it (with
    ``--calibration``: the stand-in is what it is, the model is calibrated), checked."""
    from .cli import with_calibration

    pairs = []
    for path in args.scenarios:
        source = read_scenario(path, args.profile or None, args.overrides)
        _check_runnable(source, args.runner)
        calibrated = with_calibration(args, path, console) if args.calibration else None
        pairs.append((source, read_scenario(path, args.profile or None, calibrated)
                      if calibrated is not None else source))
    return pairs


def _check_runnable(source: ScenarioFile, runner: str) -> None:
    from labcore.preflight import check_problems

    problems = check_problems(source, "sim")
    if problems:
        first, *more = problems
        raise ScenarioError(first.file, first.message, first.path, first.line, more)
    if runner == "chaos":
        experiment(source.scenario)


def experiment(scenario: Scenario) -> Path:
    """The chaos experiment of ``scenario`` (``chaos/experiments/<name>.yaml``)."""
    path = EXPERIMENTS / f"{scenario.name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")))
        raise ConformError(f"no chaos experiment for scenario {scenario.name!r} "
                           f"(chaos/experiments has: {known})")
    return path


def _one(source: ScenarioFile, sim_source: ScenarioFile, args: argparse.Namespace,
         console: Console) -> dict[str, Any]:
    scenario = source.scenario
    folder = args.out / scenario.name
    console.print(f"{scenario.name}: {args.replications} simulated replications",
                  highlight=False)
    results, per_run = _simulate(sim_source, args, folder / "sim")
    console.print(f"{scenario.name}: the {args.runner} runner on {args.dir}", highlight=False)
    measured_dir = folder / args.runner
    code, stderr = _run_runner(source, args, measured_dir)
    rows, facts, note = _measure(source, args, measured_dir, per_run, code, stderr)
    if facts is not None:
        from .conform_plot import plot_overlay

        plot_overlay(rows, results, facts, folder / "overlay.png")
    make_console().print(conformance_table(scenario.name, rows, note))
    return {"scenario": scenario.name, "source": str(source.path), "runner_exit": code,
            "note": note, "agree": note is None and overall(rows),
            "checks": [r.as_dict() for r in rows],
            "overlay": str(folder / "overlay.png") if facts is not None else None}


def _simulate(source: ScenarioFile, args: argparse.Namespace,
              out: Path) -> tuple[list[Any], list[dict[str, float | None]]]:
    from .report import build_summary, per_run_metrics, write_run
    from .run import run_replications

    scenario = source.scenario
    results = run_replications(scenario, scenario.run.seed, args.replications, args.jobs)
    per_run = per_run_metrics(scenario, results)
    summary = build_summary(scenario, results, str(source.path), args.profile,
                            tuple(args.overrides), per_run)
    write_run(out, summary, results, dict(source.data), plots=False, per_run=per_run)
    return results, per_run


def runner_command(source: ScenarioFile, runner: str, sandbox: Path, profile: str,
                   overrides: Sequence[str], out: Path) -> list[str]:
    """The real runner's command line (docs/loadtests.md, docs/chaos.md)."""
    if runner == "chaos":
        # The wrapper stops (and rolls back) before this command's own limit kills it.
        limit = source.scenario.run.duration + RUNNER_MARGIN - ROLLBACK_MARGIN
        return [sys.executable, "-m", "chaosomnisql", "run", str(experiment(source.scenario)),
                "--dir", str(sandbox), "--results", str(out), "--timeout", f"{limit:g}"]
    command = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"),
               "--headless", "--only-summary", "--loglevel", "WARNING",
               "--scenario", str(source.path), "--sandbox-dir", str(sandbox),
               "--results-dir", str(out)]
    if profile:
        command += ["--scenario-profile", profile]
    for item in overrides:
        command += ["--scenario-set", item]
    if _needs_injection(source.scenario):
        command.append("--inject-faults")
    return command


def _needs_injection(scenario: Scenario) -> bool:
    """Locust sends traffic surges itself; any other fault, a blue-green release (the
    stand-in's cutover) and the operator's timed calls (a ``user_cap`` or ``token_refresh``
    that starts after the run: rate_limit_flood_mitigated's cap, whose only fault is a
    surge) go through the fault and admin APIs."""
    return (any(not isinstance(f, TrafficSurge) for f in scenario.faults)
            or isinstance(scenario.release, BlueGreen)
            or any(isinstance(m, (UserCapMitigation, TokenRefresh))
                   and m.start(scenario.faults) > 0.0 for m in scenario.mitigations))


def _run_runner(source: ScenarioFile, args: argparse.Namespace, out: Path) -> tuple[int, str]:
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("facts.npz", "summary.json"):  # a previous run's must not be read as this one's
        (out / stale).unlink(missing_ok=True)
    command = runner_command(source, args.runner, args.dir, args.profile, args.overrides, out)
    env = {**os.environ, "OMNISQL_PROFILE": args.profile}
    timeout = source.scenario.run.duration + RUNNER_MARGIN
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                              timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return -1, f"the {args.runner} runner ran over {timeout:g} s"
    (out / "runner.log").write_text(proc.stdout + proc.stderr)
    return proc.returncode, proc.stderr


def _measure(source: ScenarioFile, args: argparse.Namespace, out: Path,
             per_run: list[dict[str, float | None]], code: int, stderr: str,
             ) -> tuple[list[CheckComparison], Any, str | None]:
    """The rows; the runner's facts (None if it wrote none); why nothing was compared."""
    scenario = source.scenario
    predicted = predict(scenario, per_run)
    if code == 2 or not (out / "facts.npz").exists() or not (out / "summary.json").exists():
        what = "refused the scenario" if code == 2 else "wrote no facts.npz/summary.json"
        note = f"the {args.runner} runner (exit {code}) {what}: {stderr.strip()[-300:]}"
        blank = {k: _blank(note) for k in predicted}
        return compare(scenario, predicted, blank), None, note
    summary = json.loads((out / "summary.json").read_text())
    measured_scenario = _as_measured(source, args, summary)
    facts = load_facts(out / "facts.npz", measured_scenario)
    # Locust gets --inject-faults (or sends the surge itself) and a chaos experiment injects
    # its fault (or cuts a blue-green release over): the timeline ran unless a call failed.
    timeline = bool(scenario.faults) or isinstance(scenario.release, BlueGreen)
    faults_applied = timeline and not summary.get("faults_failed")
    measured = measure(measured_scenario, facts, args.runner, faults_applied,
                       runner_not_measured(summary))
    return compare(scenario, predicted, measured), facts, None


def _blank(note: str) -> Any:
    from .conform import Measured

    return Measured(None, None, note)


def _as_measured(source: ScenarioFile, args: argparse.Namespace,
                 summary: dict[str, Any]) -> Scenario:
    """The scenario as the runner cut its windows: a chaos run records its own window,
    warm-up and sustain (``summary.json`` ``windows``); Locust uses the scenario's."""
    windows = summary.get("windows") or {}
    extra = [f"{path}={windows[key]}s" for key, path in
             (("window", "run.window"), ("warmup", "run.warmup"), ("sustain", "slo.sustain"))
             if windows.get(key) is not None]
    if not extra:
        return source.scenario
    return read_scenario(source.path, args.profile or None,
                         [*args.overrides, *extra]).scenario


def conformance_table(name: str, rows: Sequence[CheckComparison], note: str | None) -> Any:
    """A rich table: the simulator's verdict and P(pass), the 95% prediction interval, the
    measured value and the real runner's verdict, inside the interval, agree; the reasons
    a check was not measured below it."""
    from rich.table import Table

    from .humanize import human

    reasons = sorted({r.measured.reason for r in rows if not r.compared and r.measured.reason})
    caption = "; ".join(f"({i}) {why}" for i, why in enumerate(reasons, start=1))
    table = Table(title=f"{name}: simulated vs measured" + (f"\n{note}" if note else ""),
                  caption=caption or None, expand=True)
    for column in ("check", "sim", "P(pass)", "95% PI", "measured", "real", "inside", "agree"):
        wide = column in ("check", "95% PI", "measured")
        table.add_column(column, overflow="fold", no_wrap=not wide, ratio=2 if wide else None)
    for row in rows:
        pred, meas = row.predicted, row.measured
        interval = f"{human(pred.low, row.metric)} – " + (
            human(pred.high, row.metric) if pred.high is not None else "not recovered")
        table.add_row(row.name, _verdict(pred.passed),
                      "—" if pred.p_pass is None else f"{100 * pred.p_pass:.0f}%", interval,
                      _value(meas.value, row.metric) if row.compared
                      else f"not measured ({reasons.index(meas.reason) + 1})"
                      if meas.reason in reasons else "not measured",
                      _verdict(meas.passed), _yes(row.inside), _agree(row))
    return table


def _agree(row: CheckComparison) -> str:
    """yes/no, and for a disagreement how many replications judged as the real run did."""
    if row.agree is not False or row.alike is None:
        return _yes(row.agree)
    return f"[bold red]no[/bold red] ({row.alike}/{row.predicted.replications} runs alike)"


def _value(value: float | None, metric: str) -> str:
    from .humanize import human

    if value is not None:
        return human(value, metric)
    return "not recovered" if metric.endswith(("rto_seconds", "recovery_seconds")) else "none"


def _verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("pass" if passed else "FAIL")


def _yes(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "[bold red]no[/bold red]")


def _json_safe(value: Any) -> Any:
    from .report import json_safe

    return json_safe(value)

