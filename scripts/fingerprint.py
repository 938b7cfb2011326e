"""Fingerprint every shipped scenario's results, to prove a refactor or speed-up moved none.

For each scenario under ``scenarios/`` (textbook included) at a fixed seed this records the
SHA-256 of the ``summary.json`` that ``python -m sim run`` writes (all replications the
scenario asks for, no plots) and of every window array, the fault marks, the RPO losses and
the facts of replication 0.

    python scripts/fingerprint.py write fingerprints.json      # before the change
    python scripts/fingerprint.py check fingerprints.json      # after: exit 1 on any move

``check`` prints each scenario whose fingerprint moved and which part moved.
``--replications N`` runs N replications instead of each scenario's own (a quicker,
smaller fingerprint: ``tests/test_sim_compiled.py`` compares the compiled and the pure
path with one). The path this runs is the process's (``SIM_PURE=1`` forces pure).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 1


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fingerprint(path: str, replications: int | None = None) -> dict[str, str]:
    import sim.run
    from sim.cli import main

    parts: dict[str, str] = {}
    argv = ["run", path, "--seed", str(SEED), "--no-plots", "--out", "", "--jobs", "1"]
    if replications is not None:
        argv += ["-R", str(replications)]
    # The run's first replication is simulate(scenario, SEED) (sim.run.replication_seeds):
    # its arrays are fingerprinted as the CLI's run made them, not simulated a second time.
    results: list[sim.run.RunResult] = []
    run_replications = sim.run.run_replications

    def keep(*args: Any, **kwargs: Any) -> list[sim.run.RunResult]:
        results.extend(run_replications(*args, **kwargs))
        return results

    sim.run.run_replications = keep  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
            argv[argv.index("--out") + 1] = out
            code = main(argv)
            parts["exit"] = str(code)
            parts["summary.json"] = _digest((Path(out) / "summary.json").read_bytes())
    finally:
        sim.run.run_replications = run_replications
    result = results[0]
    for name in sorted(result.arrays):
        array = np.ascontiguousarray(result.arrays[name])
        parts[f"arrays.{name}"] = _digest(str(array.dtype).encode() + repr(array.shape).encode()
                                          + array.tobytes())
    parts["marks"] = _digest(repr(result.marks).encode())
    parts["rpo_losses"] = _digest(repr(result.rpo_losses).encode())
    parts["facts"] = _digest(repr(sorted(result.facts.items())).encode())
    return parts


def scenarios() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").rglob("*.yaml"))


def collect(jobs: int, replications: int | None = None) -> dict[str, dict[str, str]]:
    paths = scenarios()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return dict(zip(paths, pool.map(fingerprint, paths, [replications] * len(paths))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["write", "check"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--replications", type=int, default=None,
                        help="replications per scenario (default: each scenario's own)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # summary.json names its source path relative to the checkout
    current = collect(args.jobs, args.replications)
    if args.mode == "write":
        args.file.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"{len(current)} scenarios fingerprinted into {args.file}")
        return 0
    expected = json.loads(args.file.read_text())
    moved = 0
    for path in sorted(set(expected) | set(current)):
        before, after = expected.get(path, {}), current.get(path, {})
        diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if diff:
            moved += 1
            print(f"MOVED {path}: {', '.join(diff)}")
    print(f"{len(current)} scenarios checked, {moved} moved")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
