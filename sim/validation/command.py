"""``python -m sim validate-model``: the comparison table and its exit code."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

from labcore.metrics import Estimate

from .cases import CASES, QUICK
from .ciw_runner import CIW_README_WAIT, ciw_readme_check
from .compare import FAMILY_ALPHA, Row, validate

__all__ = ["add_parser", "run_command", "table"]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}"


def _interval(est: Estimate) -> str:
    if est.mean is None:
        return "—"
    if est.ci_low is None or est.ci_high is None:
        return _fmt(est.mean)
    return f"{_fmt(est.mean)} ± {(est.ci_high - est.ci_low) / 2.0:.2g}"


def table(rows: Sequence[Row]) -> Any:
    """The comparison table (a rich ``Table``)."""
    from rich.table import Table

    out = Table(title="Model validation: theory, Ciw and the lab on the same networks")
    for column in ("case", "quantity", "theory", "Ciw (95% CI)", "lab (95% CI)", "min p",
                   "agree"):
        out.add_column(column, justify="left" if column in ("case", "quantity") else "right",
                       no_wrap=True)
    previous = None
    for row in rows:
        ps = [p for p in (row.p_theory, row.p_ciw) if p is not None]
        out.add_row(row.case if row.case != previous else "", row.quantity, _fmt(row.theory),
                    _interval(row.ciw_estimate), _interval(row.lab_estimate),
                    f"{min(ps):.3f}" if ps else "—",
                    "[green]yes[/green]" if row.agree else "[bold red]no[/bold red]")
        previous = row.case
    return out


def add_parser(sub: Any) -> None:
    """The ``validate-model`` subcommand."""
    parser = sub.add_parser("validate-model", help="check the model against queueing theory "
                            "and Ciw on textbook cases (scenarios/textbook/)")
    parser.add_argument("--replications", "-R", type=int, default=20,
                        help="lab replications per case (default 20)")
    parser.add_argument("--ciw-replications", type=int, default=10,
                        help="Ciw replications per case (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--case", dest="cases", action="append", default=[], metavar="TEXT",
                        help="only cases whose name contains TEXT, any case (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="half-length runs (" + ", ".join(QUICK) + ")")
    parser.add_argument("--jobs", "-j", type=int, default=0,
                        help="worker processes (default: one per core)")


def run_command(args: Any, console: Any) -> int:
    """Run the cases, print the table; exit 0 if every row agrees and Ciw is driven right."""
    wanted = [t.lower() for t in args.cases]
    cases = [c for c in CASES if not wanted or any(t in c.name.lower() for t in wanted)]
    if not cases or args.replications < 2 or args.ciw_replications < 2:
        console.print("validate-model: need at least one case and 2 replications of each "
                      "simulator", highlight=False)
        return 2
    readme = ciw_readme_check()
    readme_ok = readme == CIW_README_WAIT
    started = time.perf_counter()
    rows = validate(cases, args.replications, args.ciw_replications,
                    QUICK if args.quick else (), args.seed, args.jobs or os.cpu_count() or 1)
    console.width = max(console.width, 128)  # the table needs it; pipes default to 80
    console.print(table(rows))
    tests = sum(r.tests for r in rows)
    console.print(
        f"Agreement: lab vs theory by a one-sample t test, lab vs Ciw by Welch's t test, on "
        f"{args.replications} lab and {args.ciw_replications} Ciw replications per case; "
        f"a row agrees when every p ≥ {FAMILY_ALPHA:g}/{tests} = {rows[0].alpha:.2g} "
        f"(Bonferroni over the table's {tests} tests).", highlight=False)
    console.print(f"Ciw driver check (README M/M/3, seed 1, 1440 time units): mean wait "
                  f"{readme!r}, expected {CIW_README_WAIT!r}: "
                  f"{'ok' if readme_ok else 'MISMATCH'}", highlight=False)
    agreed = sum(r.agree for r in rows)
    console.print(f"{agreed}/{len(rows)} quantities agree; {time.perf_counter() - started:.0f} s",
                  highlight=False)
    return 0 if readme_ok and agreed == len(rows) else 1

