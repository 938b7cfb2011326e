"""``python -m sim``: run, validate and benchmark scenarios.

Exit codes: 0 every check passed, 1 a check failed, 2 bad input (the message names the
file, the field and the line; no traceback), 3 an internal error (a bug: the traceback is
printed), kept apart from 1 so that a crash is never read as a failed check.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NoReturn, Sequence

from rich.console import Console
from rich.markup import escape

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
    run.add_argument("--out", type=Path, help="run folder (default: runs/<scenario>-s<seed>)")
    run.add_argument("--jobs", "-j", type=int, default=0,
                     help="worker processes for replications (default: one per core)")
    run.add_argument("--no-plots", action="store_true", help="skip overview.png")

    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", type=Path, nargs="+")
    validate.add_argument("--profile")
    validate.add_argument("--set", dest="overrides", action="append", default=[])

    bench = sub.add_parser("bench", help="simulated requests per wall-second against peers")
    bench.add_argument("--scenario", type=Path, default=Path("scenarios/baseline.yaml"))
    bench.add_argument("--duration", default="3m", help="simulated time per measurement")
    bench.add_argument("--repeat", type=int, default=5,
                       help="interleaved rounds of measurements (the best of each model kept)")
    bench.add_argument("--no-memory", action="store_true",
                       help="skip the peak-memory run (one simulated hour at 2,000 req/s)")

    from .sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    from .validation import add_parser as add_validation_parser

    add_validation_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    from labcore.scenario_file import ScenarioError

    try:
        if args.command == "run":
            return _run(args, console)
        if args.command == "validate":
            return _validate(args, console)
        if args.command == "sweep":
            from .sweep import run_command

            return run_command(args, console)
        if args.command == "validate-model":
            from .validation import run_command as validate_model

            return validate_model(args, Console())
        from .bench import run_bench

        return run_bench(args, Console())
    except ScenarioError as exc:
        console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("interrupted", highlight=False)
        return 130
    except Exception:  # noqa: BLE001 - a crash must not look like a failed check (1)
        console.print_exception()
        return EXIT_INTERNAL


def _validate(args: argparse.Namespace, console: Console) -> int:
    from labcore.scenario_file import ScenarioError, read_scenario

    status = EXIT_OK
    for path in args.scenarios:
        try:
            read_scenario(path, args.profile, args.overrides)
            console.print(f"{path}: ok", highlight=False)
        except ScenarioError as exc:
            console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
            status = EXIT_BAD_INPUT
    return status


def _run(args: argparse.Namespace, console: Console) -> int:
    from labcore.scenario_file import ScenarioError, read_scenario

    from .report import build_summary, tenant_table, verdict_table, write_run
    from .resilience import release_table, resilience_table
    from .run import run_replications

    source = read_scenario(args.scenario, args.profile, args.overrides)
    scenario = source.scenario
    if args.replications is not None and args.replications < 1:
        raise ScenarioError(str(args.scenario), "--replications must be at least 1")
    replications = args.replications or scenario.run.replications
    seed = scenario.run.seed if args.seed is None else args.seed
    jobs = args.jobs or min(replications, os.cpu_count() or 1)
    out = args.out or Path("runs") / f"{scenario.name}-s{seed}"
    started = time.perf_counter()
    with _Progress(console, replications) as progress:
        results = run_replications(scenario, seed, replications, jobs, progress.done,
                                   progress.partial)
    summary = build_summary(scenario, results, str(args.scenario), args.profile,
                            tuple(args.overrides))
    for index, check in enumerate(summary["checks"]):
        key = check["metric"] if check["over"] == "run" else f"{check['metric']}@{check['over']}"
        if key not in summary["metrics"]:
            known = ", ".join(sorted(k for k in summary["metrics"] if "@" not in k))
            raise source.error(("checks", index, "metric"),
                               f"this run has no metric {check['metric']!r}; it has: {known}")
    data = dict(source.data, run=dict(source.data.get("run", {}), seed=seed))
    write_run(out, summary, results, data, plots=not args.no_plots)
    Console().print(tenant_table(summary))
    Console().print(verdict_table(summary))
    if summary["release"] is not None:
        Console().print(release_table(summary["release"]))
    Console().print(resilience_table(summary["resilience"]))
    elapsed = time.perf_counter() - started
    requests = sum(r.requests for r in results)
    console.print(f"{requests:,} simulated requests in {elapsed:.1f}s; results in {out}/",
                  highlight=False)
    failed = [c for c in summary["checks"] if not c["passed"]]
    for check in failed:
        console.print(f"[bold red]FAILED[/bold red] {check['name']}: {check['metric']} "
                      f"{check['op']} {check['threshold']:g}, observed {check['observed']}",
                      highlight=False)
    return EXIT_FAILED if failed else EXIT_OK


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
