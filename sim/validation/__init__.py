"""Trust in the model: textbook cases against queueing theory and Ciw.

Each case is a scenario file under ``scenarios/textbook/`` plus ``--set`` overrides:
nothing here configures the model any other way. A case is measured three ways, on the
same network with the same parameters, all read from the scenario:

* **theory** (:mod:`.queueing`, :mod:`.cases`): a closed form where one exists (Erlang
  C for M/M/c, Pollaczek–Khinchine for M/D/1, the M/M/c/K birth–death chain, Jackson's
  theorem for the tandem, Little's law for the work caught in a lost zone);
* **Ciw** (:mod:`.ciw_runner`), an independent queueing-network simulator with its own
  random numbers;
* **the lab**: :func:`sim.run.simulate` over replications, 95% Student-t interval.

Every estimate is over the same measured interval (``run.warmup`` to ``run.duration``)
and counts the same jobs: waits of jobs *starting* service in it, latencies of requests
*ending* in it. :mod:`.compare` decides agreement by tests (Bonferroni-corrected), and
:mod:`.command` prints the table (``python -m sim validate-model``). The tests in
``tests/test_validation.py`` also check the other side: the same rule says "no" to a
model whose service time is 5% off.
"""

from .cases import CASES, QUICK, Case, detection_time, lab_quantities, theory
from .ciw_runner import CIW_README_WAIT, ciw_quantities, ciw_readme_check
from .command import add_parser, run_command, table
from .compare import FAMILY_ALPHA, Row, agreement, ciw_task, lab_task, validate
from .queueing import StationTheory, erlang_c, md1, mmc, mmck

__all__ = [
    "CASES",
    "CIW_README_WAIT",
    "FAMILY_ALPHA",
    "QUICK",
    "Case",
    "Row",
    "StationTheory",
    "add_parser",
    "agreement",
    "ciw_quantities",
    "ciw_readme_check",
    "ciw_task",
    "detection_time",
    "erlang_c",
    "lab_quantities",
    "lab_task",
    "md1",
    "mmc",
    "mmck",
    "run_command",
    "table",
    "theory",
    "validate",
]
