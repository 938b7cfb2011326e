"""``python -m sim``: run, validate and benchmark scenarios.

Exit codes: 0 every check passed, 1 a check failed, 2 bad input (the message names the
file, the field and the line; no traceback), 3 an internal error (a bug: the traceback is
printed), kept apart from 1 so that a crash is never read as a failed check.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Sequence

from rich.console import Console
from rich.markup import escape

from labcore.registry import metric_key

from .humanize import make_console

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="simulate a scenario and check it")
    run.add_argument("scenario", type=Path)
    run.add_argument("--seed", type=int, help="run seed (default: the scenario's run.seed)")
    run.add_argument("--replications", "-R", type=int, help="independent replications")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="PATH=VALUE", help="override a scenario value, e.g. "
                     "topology.engine.workers_per_zone=12 (repeatable)")
    run.add_argument("--profile", help="apply a target profile of the scenario (e.g. standin)")
    run.add_argument("--calibration", type=Path, metavar="FILE",
                     help="apply a calibration overlay after the profile (python -m sim "
                     "calibrate writes one); --set still wins")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<scenario>-s<seed>)")
    run.add_argument("--jobs", "-j", type=int,
                     help="worker processes for replications (default and most: one per core)")
    run.add_argument("--force", action="store_true",
                     help="run even if the replications' estimated memory exceeds the machine's")
    run.add_argument("--no-plots", action="store_true", help="skip overview.png")
    why = run.add_mutually_exclusive_group()
    why.add_argument("--why", dest="why", action="store_true", default=None,
                     help="print why the SLO was missed even if every check passed "
                     "(default: printed when a check fails)")
    why.add_argument("--no-why", dest="why", action="store_false", help="never print it")

    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", type=Path, nargs="+")
    validate.add_argument("--profile")
    validate.add_argument("--set", dest="overrides", action="append", default=[])
    validate.add_argument("--runner", choices=["sim", "chaos", "locust"], default="sim",
                          help="also refuse checks this runner cannot observe (default: sim)")

    compare = sub.add_parser("compare", help="two run folders side by side: CIs, difference, "
                             "Welch t test, overlay plot")
    compare.add_argument("run_a", type=Path, help="run folder A (from python -m sim run)")
    compare.add_argument("run_b", type=Path, help="run folder B")
    compare.add_argument("--out", type=Path,
                         help="folder for compare.json and compare.png "
                         "(default: runs/compare-<A>-vs-<B>)")

    new = sub.add_parser("new", help="a new scenario file, copied from a shipped one "
                         "with comments, validated")
    new.add_argument("name", help="scenario name (the file is NAME.yaml)")
    new.add_argument("--from", dest="source", default="baseline",
                     help="shipped scenario name or path to start from (default: baseline)")
    new.add_argument("--dir", type=Path, default=Path("."),
                     help="folder to write NAME.yaml in (default: the current folder)")

    docs = sub.add_parser("docs", help="regenerate the schema and metric reference in "
                          "docs/scenarios.md")
    docs.add_argument("--check", action="store_true",
                      help="only check that the doc is up to date (exit 1 if not)")

    bench = sub.add_parser("bench", help="simulated requests per CPU-second, compiled and pure, "
                                         "against peers")
    bench.add_argument("--scenario", type=Path, default=Path("scenarios/baseline.yaml"))
    bench.add_argument("--duration", default="3m", help="simulated time per measurement")
    bench.add_argument("--repeat", type=int, default=5,
                       help="interleaved rounds of measurements (the best of each model kept)")
    bench.add_argument("--no-memory", action="store_true",
                       help="skip the scale table (peak memory and metrics time per size)")
    bench.add_argument("--quick", action="store_true",
                       help="tiny sizes: exercises every measurement in seconds (no figures)")
    bench.add_argument("--json", type=Path, default=None, metavar="FILE",
                       help="also write the figures as JSON to FILE")

    from .sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    from .validation import add_parser as add_validation_parser

    add_validation_parser(sub)
    from .export import add_parser as add_export_parser  # issue 17: canary analysis export

    add_export_parser(sub)
    from .conform_run import add_parser as add_conform_parser  # issue 18

    add_conform_parser(sub)
    from .calibrate_io import add_parser as add_calibrate_parser  # issue 18

    add_calibrate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = make_console(stderr=True, soft_wrap=True)
    from labcore.scenario_file import ScenarioError

    try:
        if args.command == "run":
            return _run(args, console)
        if args.command == "validate":
            return _validate(args, console)
        if args.command == "sweep":
            from .sweep import run_command

            return run_command(args, console)
        if args.command == "export":  # issue 17
            from .export import run_command as export

            return export(args, console)
        if args.command == "conform":  # issue 18
            return _conform(args, console)
        if args.command == "calibrate":  # issue 18
            return _calibrate(args, console)
        if args.command == "compare":
            from .compare import run_compare

            return run_compare(args.run_a, args.run_b, args.out, console)
        if args.command == "new":
            return _new(args, console)
        if args.command == "docs":
            return _docs(args, console)
        if args.command == "validate-model":
            from .validation import run_command as validate_model

            return validate_model(args, make_console())
        from .bench import run_bench

        return run_bench(args, make_console())
    except ScenarioError as exc:
        _print_error(console, exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("interrupted", highlight=False)
        return 130
    except Exception:  # noqa: BLE001 - a crash must not look like a failed check (1)
        console.print_exception()
        return EXIT_INTERNAL


def _conform(args: argparse.Namespace, console: Console) -> int:
    from .conform_run import ConformError, run_command

    try:
        return run_command(args, console)
    except ConformError as exc:
        console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        return EXIT_BAD_INPUT


def _calibrate(args: argparse.Namespace, console: Console) -> int:
    from .calibrate import run_command
    from .calibrate_io import CalibrationError

    try:
        return run_command(args, console)
    except CalibrationError as exc:
        console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        return EXIT_BAD_INPUT


def with_calibration(args: argparse.Namespace, scenario: Path | None = None,
                     console: Console | None = None) -> list[str]:
    """``--calibration FILE``'s overrides (those the ``scenario`` file has a section for,
    and not a provider latency fitted on a stand-in configured otherwise than the scenario
    at its profile: each such one is named on ``console``), then ``--set``'s (which win)."""
    from .calibrate import calibration_overrides

    if not args.calibration:
        return list(args.overrides)
    skip = _calibration_mismatches(args, scenario)
    for key, why in skip.items():
        if console is not None:
            console.print(f"calibration: {key} not applied: {why}", highlight=False)
    return [*calibration_overrides(args.calibration, _raw_sections(scenario), skip),
            *args.overrides]


def _calibration_mismatches(args: argparse.Namespace, scenario: Path | None) -> dict[str, str]:
    from labcore.scenario_file import ScenarioError, read_scenario

    from .calibrate import calibration_mismatches

    if scenario is None:
        return {}
    try:
        own = read_scenario(scenario, getattr(args, "profile", None) or None,
                            list(args.overrides)).scenario
    except ScenarioError:
        return {}  # reported when the calibrated scenario is read
    return calibration_mismatches(args.calibration, own)


def _raw_sections(scenario: Path | None) -> dict[str, Any] | None:
    """The scenario file's top-level mapping, or None (unreadable: its own errors are
    reported when it is read)."""
    import yaml

    try:
        data = yaml.safe_load(scenario.read_text()) if scenario is not None else None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _new(args: argparse.Namespace, console: Console) -> int:
    from .scaffold import new_scenario

    path = new_scenario(args.name, args.source, args.dir)
    console.print(f"{path}: written from {args.source}, valid; edit it, then "
                  f"python -m sim run {path}", highlight=False)
    return EXIT_OK


def _docs(args: argparse.Namespace, console: Console) -> int:
    from .docs import DOC, update_doc

    if update_doc(check=args.check):
        console.print(f"{DOC}: {'up to date' if args.check else 'regenerated'}",
                      highlight=False)
        return EXIT_OK
    console.print(f"{DOC}: out of date; run python -m sim docs", highlight=False)
    return EXIT_FAILED


def _print_error(console: Console, exc: Exception) -> None:
    """Every problem of a refused input, one ``error:`` line each."""
    for problem in getattr(exc, "problems", (exc,)):
        text = problem.where() if hasattr(problem, "where") else str(problem)
        console.print(f"[bold red]error:[/bold red] {escape(text)}", highlight=False)


def _validate(args: argparse.Namespace, console: Console) -> int:
    from labcore.preflight import check_problems
    from labcore.scenario_file import ScenarioError, read_scenario

    from .limits import check_duration

    status = EXIT_OK
    for path in args.scenarios:
        try:
            source = read_scenario(path, args.profile, args.overrides)
            check_duration(source)
            errors = check_problems(source, args.runner)
        except ScenarioError as exc:
            errors = [exc]
        for error in errors:
            _print_error(console, error)
        if errors:
            status = EXIT_BAD_INPUT
        else:
            console.print(f"{path}: ok", highlight=False)
    return status


def _plan_run(args: argparse.Namespace, console: Console) -> tuple[Any, int, int, int, Path]:
    """Everything a run needs, refused before any simulation: (source, replications, seed,
    jobs, out)."""
    from labcore.preflight import check_problems
    from labcore.scenario_file import ScenarioError, read_scenario

    from .limits import check_duration, check_memory, check_out_folder, choose_jobs

    args.overrides = with_calibration(args, args.scenario, console)
    source = read_scenario(args.scenario, args.profile, args.overrides)
    problems = check_problems(source, "sim")  # before the run, not after it; all of them
    if problems:
        first, *more = problems
        raise ScenarioError(first.file, first.message, first.path, first.line, more)
    scenario = source.scenario
    if args.replications is not None and args.replications < 1:
        raise ScenarioError(str(args.scenario), "--replications must be at least 1")
    check_duration(source)
    replications = args.replications or scenario.run.replications
    seed = scenario.run.seed if args.seed is None else args.seed
    jobs = choose_jobs(args.jobs, replications,
                       lambda text: console.print(f"[yellow]{escape(text)}[/yellow]",
                                                  highlight=False))
    check_memory(scenario, replications, jobs, str(args.scenario), args.force)
    out = args.out or Path("runs") / f"{scenario.name}-s{seed}"
    check_out_folder(out)
    return source, replications, seed, jobs, out


def _run(args: argparse.Namespace, console: Console) -> int:
    from .report import build_summary, per_run_metrics, write_run
    from .run import run_replications

    source, replications, seed, jobs, out = _plan_run(args, console)
    scenario = source.scenario
    started = time.perf_counter()
    with _Progress(console, replications) as progress:
        results = run_replications(scenario, seed, replications, jobs, progress.done,
                                   progress.partial)
    per_run = per_run_metrics(scenario, results)
    summary = build_summary(scenario, results, str(args.scenario), args.profile,
                            tuple(args.overrides), per_run)
    for index, check in enumerate(summary["checks"]):
        if metric_key(check["metric"], check["over"]) not in summary["metrics"]:
            known = ", ".join(sorted(k for k in summary["metrics"] if "@" not in k))
            raise source.error(("checks", index, "metric"),
                               f"this run has no metric {check['metric']!r}; it has: {known}")
    data = dict(source.data, run=dict(source.data.get("run", {}), seed=seed))
    write_run(out, summary, results, data, plots=not args.no_plots, per_run=per_run)
    _print_verdict(summary, console)
    elapsed = time.perf_counter() - started
    requests = sum(r.requests for r in results)
    console.print(f"{requests:,} simulated requests in {elapsed:.1f}s; results in {out}/",
                  highlight=False)
    if args.why or (args.why is None and not summary["passed"]):
        _print_why(summary)
    return _print_outcome(summary, console)


def _print_why(summary: dict[str, Any]) -> None:
    from .why import why_lines

    out = make_console()
    for line in why_lines(summary["why"]):
        out.print(escape(line), highlight=False)


def _print_verdict(summary: dict[str, Any], console: Console) -> None:
    """The tables on stdout: tenants, checks, release and resilience (when they apply)."""
    from .resilience import release_table, resilience_table
    from .verdict import tenant_table, verdict_table

    out = make_console()
    out.print(tenant_table(summary))
    out.print(verdict_table(summary))
    if summary["release"] is not None:
        out.print(release_table(summary["release"]))
    resilience = resilience_table(summary["resilience"])
    if resilience is not None:
        out.print(resilience)


def _print_outcome(summary: dict[str, Any], console: Console) -> int:
    """The failed checks, then the overall line; the exit code."""
    from .verdict import failure_lines, overall_line

    for line in failure_lines(summary):
        console.print(f"[bold red]{escape(line)}[/bold red]", highlight=False)
    passed = all(c["passed"] for c in summary["checks"])
    colour = "green" if passed else "bold red"
    console.print(f"[{colour}]{overall_line(summary)}[/{colour}]", highlight=False)
    return EXIT_OK if passed else EXIT_FAILED


class _Progress:
    """A progress bar over replications, shown only on a terminal for runs over ~2 s."""

    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import Progress

        self.total, self.count = total, 0
        self.progress = Progress(console=console, transient=True,
                                 disable=not console.is_terminal)
        self.task = self.progress.add_task("simulating", total=total)

    def __enter__(self) -> "_Progress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def done(self, index: int, result: object) -> None:
        self.count += 1
        self.progress.update(self.task, completed=self.count)

    def partial(self, index: int, fraction: float) -> None:
        self.progress.update(self.task, completed=self.count + fraction)
