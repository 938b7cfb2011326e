"""Parameter sweeps: a grid of scenario variants × replications, on local processes or Dask.

A *factor* is a dotted scenario path and the values it takes
(``topology.engine.workers_per_zone=12,18,24``); the grid is the Cartesian product of
the factors, one *point* per combination. Every point is read with its factor values
applied as overrides, before anything runs, so a bad path fails at once with the
scenario's own error (file, line, field). Each point then runs ``R`` replications and
:func:`sweep` returns one tidy row per run: the factor values, ``point``,
``replication``, ``seed``, every metric of :func:`sim.compute_metrics` over the whole
run, the same metrics as ``metric@scope`` for each other scope the scenario's checks
use (``latency_p95@outside_recovery``), and ``checks_passed`` (that run's checks, each
judged by :func:`sim.passes` on the run's own value).

Seeds: replication ``r`` of every point runs ``replication_seeds(seed, R)[r]``, i.e.
common random numbers across points, so the difference between two points is the
factors', not the noise's. A run is a pure function of (scenario, seed) and rows are
sorted by (point, replication), so the DataFrame is the same whichever executor ran
it, with however many workers, in whatever order the runs finished.

Executors: a local process pool (``jobs``; ``jobs=1`` runs in this process) or a
Dask distributed cluster (``dask=`` a scheduler address or a ``distributed.Client``).

Partial results: with ``out``, every finished run is appended at once to
``<out>.partial.jsonl`` (it survives a hard kill). On KeyboardInterrupt the pending runs
are cancelled, the finished ones are written to ``out`` and :class:`SweepInterrupted`
(a KeyboardInterrupt) carries them as a DataFrame. A complete sweep writes ``out`` and
removes the part file.

Factor columns hold the values as given; a factor whose values mix types (``1%`` and
``0.02``) becomes text, and lists and maps become one line of JSON (valid YAML), so
every column can be grouped on and written to Parquet.

Missing values are NaN: ``rto_seconds`` is NaN when the run ended before the SLO held
again (not recovered), ``rpo_seconds`` when the loss was unbounded.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self, get_args

import pandas as pd
import yaml

from labcore.checks import evaluate_checks
from labcore.metrics import Scope, compute_metrics
from labcore.registry import metric_key
from labcore.scenario import Scenario
from labcore.scenario_file import ScenarioError, read_scenario

from .limits import choose_jobs, require_extra
from .run import replication_seeds, simulate

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

__all__ = [
    "Factor",
    "SweepInterrupted",
    "SweepPlan",
    "Task",
    "execute",
    "plan_sweep",
    "read_results",
    "results_frame",
    "run_one",
    "sweep",
    "write_results",
]

#: Columns every row has before the metrics, after the factor columns.
ID_COLUMNS = ("point", "replication", "seed")
OUT_SUFFIXES = (".parquet", ".csv")
SCOPES = get_args(Scope)


@dataclass(frozen=True)
class Factor:
    """A scenario path and the values a sweep gives it, e.g.
    ``Factor("workload.scale", (0.5, 1))``."""

    path: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.path or not self.values:
            raise ValueError(f"a factor needs a path and at least one value: {self!r}")

    @classmethod
    def parse(cls, text: str) -> Factor:
        """``"topology.engine.workers_per_zone=12,18,24"`` → a factor of three values.

        Values are YAML (``250ms`` stays a string, ``12`` is a number); commas inside
        brackets do not split (``topology.zones=[a,b],[a,b,c]``).
        """
        path, sep, raw = text.partition("=")
        items = _split_top_level(raw)
        if not sep or not path.strip() or not all(item.strip() for item in items):
            raise ScenarioError("--factor", f"{text!r} must read dotted.path=value1,value2,...")
        return cls(path.strip(), tuple(_yaml_value(item) for item in items))

    def override(self, value: Any) -> str:
        """The ``--set`` text giving this factor ``value`` (JSON is valid YAML)."""
        return f"{self.path}={json.dumps(value, default=str)}"


@dataclass(frozen=True)
class Task:
    """One run of a sweep: a grid point's scenario and one replication seed."""

    point: int
    replication: int
    seed: int
    scenario: Scenario
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class SweepPlan:
    """The validated grid: each point's factor values, and every run to do."""

    factors: tuple[Factor, ...]
    points: tuple[dict[str, Any], ...]
    tasks: tuple[Task, ...]

    def row_ids(self, task: Task) -> dict[str, Any]:
        return {**self.points[task.point], "point": task.point,
                "replication": task.replication, "seed": task.seed}


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: ``frame`` holds the runs finished before it (also in ``out``)."""

    def __init__(self, frame: pd.DataFrame, total: int, out: Path | None) -> None:
        super().__init__(f"sweep interrupted after {len(frame)} of {total} runs")
        self.frame, self.total, self.out = frame, total, out


# --------------------------------------------------------------------------- planning


def plan_sweep(
    scenario: str | Path,
    factors: Iterable[Factor | str] | Mapping[str, Sequence[Any]] = (),
    replications: int | None = None,
    seed: int | None = None,
    profile: str | None = None,
    overrides: Iterable[str] = (),
    scopes: Iterable[str] = (),
) -> SweepPlan:
    """Read and validate every grid point; raise :class:`ScenarioError` on a bad factor.

    ``scopes``: metric scopes to add to those the checks use (e.g. ``before_fault``).
    """
    factor_list = _as_factors(factors)
    overrides, extra = tuple(overrides), set(scopes)
    unknown = extra - set(SCOPES)
    if unknown:
        raise ScenarioError(str(scenario), f"unknown scope(s) {sorted(unknown)}; "
                            f"scopes are {list(SCOPES)}")
    if replications is not None and replications < 1:
        raise ScenarioError(str(scenario), "--replications must be at least 1")
    points, tasks = [], []
    for index, combo in enumerate(itertools.product(*(f.values for f in factor_list))):
        items = [f.override(v) for f, v in zip(factor_list, combo)]
        variant = _read_point(scenario, profile, overrides, items)
        points.append({f.path: v for f, v in zip(factor_list, combo)})
        scopes = ("run",) + tuple(sorted(({c.over for c in variant.checks} | extra) - {"run"}))
        count = replications or variant.run.replications
        base = variant.run.seed if seed is None else seed
        for r, s in enumerate(replication_seeds(base, count)):
            tasks.append(Task(index, r, s, variant, scopes))
    return SweepPlan(tuple(factor_list), tuple(points), tuple(tasks))


def _as_factors(factors: Iterable[Factor | str] | Mapping[str, Sequence[Any]]) -> list[Factor]:
    if isinstance(factors, Mapping):
        result = [Factor(path, tuple(values)) for path, values in factors.items()]
    else:
        result = [f if isinstance(f, Factor) else Factor.parse(f) for f in factors]
    paths = [f.path for f in result]
    if len(set(paths)) != len(paths):
        raise ScenarioError("--factor", f"a path is given twice: {paths}")
    return result


def _read_point(scenario: str | Path, profile: str | None, overrides: tuple[str, ...],
                items: list[str]) -> Scenario:
    try:
        return read_scenario(scenario, profile, overrides + tuple(items)).scenario
    except ScenarioError as exc:
        message = exc.message
        for item in items:  # name the factor, not the --set it was turned into
            message = message.replace(f"--set {item}", f"--factor {item}")
        raise ScenarioError(exc.file, message, exc.path, exc.line) from None


def _split_top_level(raw: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in raw:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return items + [current]


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text.strip()


# --------------------------------------------------------------------------- one run


def run_one(scenario: Scenario, seed: int, scopes: Sequence[str] = ("run",)) -> dict[str, Any]:
    """Simulate once and return every metric (``metric@scope`` for other scopes).

    Runs in the executor's workers: only this small dict travels back, not the arrays.
    """
    result = simulate(scenario, seed)
    row: dict[str, Any] = {}
    for scope in scopes:
        for name, value in compute_metrics(result, scope).items():  # type: ignore[arg-type]
            row[metric_key(name, scope)] = math.nan if value is None else float(value)
    estimates = {key: {"mean": None if math.isnan(v) else v} for key, v in row.items()}
    row["checks_passed"] = all(c.passed for c in evaluate_checks(scenario.checks, estimates))
    return row


def _run_task(task: Task) -> dict[str, Any]:
    return run_one(task.scenario, task.seed, task.scopes)


def _run_indexed(item: tuple[int, Task]) -> tuple[int, dict[str, Any]]:
    return item[0], _run_task(item[1])


# --------------------------------------------------------------------------- executors


def _execute_serial(tasks: Sequence[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, task in enumerate(tasks):
        yield index, _run_task(task)


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: workers leave it to the parent, which
    # terminates them once it has saved what is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _execute_pool(tasks: Sequence[Task], jobs: int) -> Iterator[tuple[int, dict[str, Any]]]:
    import multiprocessing

    # Pool rather than ProcessPoolExecutor: terminate() stops runs in progress at once.
    with multiprocessing.Pool(jobs, initializer=_ignore_sigint) as pool:
        yield from pool.imap_unordered(_run_indexed, enumerate(tasks), chunksize=1)


def _execute_dask(tasks: Sequence[Task], dask: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    from distributed import Client, as_completed

    client = dask if isinstance(dask, Client) else Client(dask)
    futures = [client.submit(_run_task, task, pure=False) for task in tasks]
    index = {future.key: i for i, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            yield index[future.key], future.result()
    finally:
        client.cancel([f for f in futures if not f.done()])
        if client is not dask:
            client.close()


def _executor(tasks: Sequence[Task], jobs: int | None,
              dask: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if dask is not None:
        return _execute_dask(tasks, dask)
    jobs = min(len(tasks), jobs or os.cpu_count() or 1)
    return _execute_serial(tasks) if jobs <= 1 else _execute_pool(tasks, jobs)


# --------------------------------------------------------------------------- the sweep


def sweep(
    scenario: str | Path,
    factors: Iterable[Factor | str] | Mapping[str, Sequence[Any]] = (),
    *,
    replications: int | None = None,
    seed: int | None = None,
    profile: str | None = None,
    overrides: Iterable[str] = (),
    scopes: Iterable[str] = (),
    jobs: int | None = None,
    dask: Any = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Run every grid point × replication and return the tidy DataFrame (see module doc).

    ``factors``: ``{"path": [values]}``, :class:`Factor` objects or ``"path=v1,v2"``
    strings. ``scopes``: extra metric scopes (``before_fault``...). ``jobs``: local worker
    processes (default one per core; 1 runs here);
    ``dask``: a scheduler address (``"tcp://127.0.0.1:8786"``) or a Client instead.
    ``out``: a ``.parquet`` or ``.csv`` file. ``progress``: a progress bar (default: on
    a terminal). ``on_result`` sees each row as it arrives.
    """
    plan = plan_sweep(scenario, factors, replications, seed, profile, overrides, scopes)
    out_path = _check_out(out)
    return execute(plan, jobs=jobs, dask=dask, out=out_path, progress=progress,
                   on_result=on_result)


def execute(
    plan: SweepPlan,
    jobs: int | None = None,
    dask: Any = None,
    out: Path | None = None,
    progress: bool | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Run a planned sweep; rows are saved as they arrive (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    part = _part_file(out)
    with _ProgressBar(len(plan.tasks), progress) as bar, _PartFile(part) as sink:
        runs = _executor(plan.tasks, jobs, dask)
        try:
            with closing(runs):  # type: ignore[type-var]
                for index, metrics in runs:
                    row = {**plan.row_ids(plan.tasks[index]), **metrics}
                    rows.append(row)
                    sink.append(row)
                    bar.advance()
                    if on_result is not None:
                        on_result(row)
        except KeyboardInterrupt:
            frame = results_frame(plan, rows)
            if out is not None:
                write_results(frame, out)
                sink.remove()
            raise SweepInterrupted(frame, len(plan.tasks), out) from None
    frame = results_frame(plan, rows)
    if out is not None:
        write_results(frame, out)
        sink.remove()
    return frame


def results_frame(plan: SweepPlan, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows sorted by (point, replication), factor and id columns first."""
    rows = sorted(rows, key=lambda row: (row["point"], row["replication"]))
    ids = [f.path for f in plan.factors] + list(ID_COLUMNS)
    metrics = list(dict.fromkeys(k for row in rows for k in row if k not in ids))
    frame = pd.DataFrame(rows, columns=ids + metrics)
    for factor in plan.factors:  # one scalar type per column (Parquet, groupby): else text
        if any(isinstance(v, (dict, list)) for v in factor.values):
            frame[factor.path] = frame[factor.path].map(_text)
        elif len({type(v) for v in factor.values}) > 1:
            frame[factor.path] = frame[factor.path].map(str)
    for column in ID_COLUMNS:
        frame[column] = frame[column].astype("int64")
    if "checks_passed" in frame:
        frame["checks_passed"] = frame["checks_passed"].astype(bool)
    return frame


def _text(value: Any) -> str:
    """A list or map factor value as one line of YAML-compatible text."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


# --------------------------------------------------------------------------- files


def write_results(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write a sweep's DataFrame as Parquet or CSV, by the file's suffix."""
    path = _check_out(out)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a sweep's results back: the ``out`` file, or a ``.partial.jsonl`` part file."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as lines:
            return pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    return pd.read_csv(path)


def _check_out(out: str | Path | None) -> Path | None:
    if out is None:
        return None
    out = Path(out)
    if out.suffix not in OUT_SUFFIXES:
        raise ScenarioError(str(out), "--out must end in .parquet or .csv")
    return out


def _part_file(out: Path | None) -> Path | None:
    return None if out is None else out.with_name(out.name + ".partial.jsonl")


class _PartFile:
    """Appends one JSON line per finished run and flushes it (NaN is written as NaN)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def __enter__(self) -> Self:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("w", encoding="utf-8")
        return self

    def append(self, row: dict[str, Any]) -> None:
        if self.handle is not None:
            self.handle.write(json.dumps(row, default=str) + "\n")
            self.handle.flush()

    def remove(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ProgressBar:
    """A rich progress bar over runs; off by default when not on a terminal."""

    def __init__(self, total: int, show: bool | None) -> None:
        from rich.progress import MofNCompleteColumn, Progress

        from .humanize import make_console

        console = make_console(stderr=True)
        enabled = console.is_terminal if show is None else show
        self.progress = Progress(*Progress.get_default_columns(), MofNCompleteColumn(),
                                 console=console, disable=not enabled)
        self.task = self.progress.add_task("sweep", total=total)

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def advance(self) -> None:
        self.progress.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


# --------------------------------------------------------------------------- CLI


def add_parser(sub: Any) -> None:
    """The ``sweep`` subcommand (called by :mod:`sim.cli`)."""
    p = sub.add_parser("sweep", help="run a grid of scenario variants x replications",
                       description="Exit codes: 0 the sweep finished (checks may fail at "
                       "some points: that is what a sweep maps), 2 bad input, 130 interrupted "
                       "(the finished runs are in --out).")
    p.add_argument("scenario", type=Path)
    p.add_argument("--factor", "-f", dest="factors", action="append", default=[],
                   metavar="PATH=V1,V2,...", help="a scenario path and its values, e.g. "
                   "topology.engine.workers_per_zone=12,18,24 (repeatable: the grid is "
                   "their product)")
    p.add_argument("--replications", "-R", type=int,
                   help="replications per point (default: the scenario's run.replications)")
    p.add_argument("--seed", type=int, help="base seed (default: the scenario's run.seed)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", "-j", type=int,
                       help="local worker processes (default: one per core; capped at the cores)")
    where.add_argument("--dask", metavar="ADDRESS",
                       help="run on a Dask distributed scheduler, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--out", type=Path,
                   help="results file, .parquet or .csv (default: runs/<scenario>-sweep.parquet)")
    p.add_argument("--scope", dest="scopes", action="append", default=[], choices=SCOPES[1:],
                   help="also compute every metric over these windows, as metric@scope "
                   "(scopes the checks use are always added)")
    p.add_argument("--profile", help="apply a target profile of the scenario")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="PATH=VALUE", help="override a scenario value for every point")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_command(args: argparse.Namespace, console: Console) -> int:
    """``python -m sim sweep``: plan (exit 2 on bad input), run, write, summarise."""
    plan = plan_sweep(args.scenario, args.factors, args.replications, args.seed,
                      args.profile, args.overrides, args.scopes)
    name = plan.tasks[0].scenario.name
    out = _check_out(args.out or Path("runs") / f"{name}-sweep.parquet")
    _check_extras(out, args.dask)
    jobs = None if args.dask else choose_jobs(args.jobs, len(plan.tasks), console.print)
    started = time.perf_counter()
    try:
        frame = execute(plan, jobs=jobs, dask=args.dask, out=out,
                        progress=False if args.no_progress else None)
    except SweepInterrupted as stop:
        console.print(f"interrupted: {len(stop.frame)} of {stop.total} runs written to {out}",
                      highlight=False)
        return 130
    elapsed = time.perf_counter() - started
    console.print(_summary_table(plan, frame))
    console.print(f"{len(frame)} runs ({len(plan.points)} points x "
                  f"{len(plan.tasks) // max(1, len(plan.points))} replications) in "
                  f"{elapsed:.1f}s; results in {out}", highlight=False)
    return 0


def _check_extras(out: Path | None, dask: str | None) -> None:
    """Refuse before any run if the results file or the scheduler needs a missing extra."""
    if out is not None and out.suffix == ".parquet":
        require_extra("pyarrow", f"sweep --out {out} (Parquet; or write --out *.csv)")
    if dask:
        require_extra("dask", "sweep --dask")


def _summary_table(plan: SweepPlan, frame: pd.DataFrame) -> Any:
    from rich.table import Table

    table = Table(title="sweep: mean per point")
    columns = [f.path for f in plan.factors]
    metrics = [m for m in ("latency_p95", "error_rate", "rto_seconds") if m in frame]
    for column in columns + metrics + ["checks passed"]:
        table.add_column(column, justify="right")
    for point, group in frame.groupby("point", sort=True):
        values = [str(v) for v in plan.points[int(point)].values()]
        means = [f"{group[m].mean(skipna=False):.4g}" for m in metrics]  # NaN: not all recovered
        table.add_row(*values, *means, f"{group['checks_passed'].mean():.0%}")
    return table
