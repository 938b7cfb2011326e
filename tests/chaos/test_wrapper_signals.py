"""The wrapper turns every interrupt into played rollbacks and a FAIL (issue 16, item 6).

Against a fake ``chaos`` on PATH (``fakes/chaos``) with Chaos Toolkit's interrupt semantics,
so each case is fast and exact. Defects reproduced: SIGINT to the wrapper's PID only was
swallowed (chaos completed, exit 0, PASS); a second SIGINT orphaned chaos; a second signal
during the rollbacks cut them short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKES = Path(__file__).resolve().parent / "fakes"

pytestmark = pytest.mark.timeout(120)

EXPERIMENT = """title: fake
description: rollbacks that leave a mark
method: []
rollbacks:
  - type: action
    name: r1
    provider: {type: python, module: os, func: getpid}
  - type: action
    name: r2
    provider: {type: python, module: os, func: getpid}
  - type: action
    name: r3
    provider: {type: python, module: os, func: getpid}
"""


class Run:
    """One wrapper run over the fake chaos, in its own process group."""

    def __init__(self, tmp: Path, **fake_env: str) -> None:
        box = tmp / "sb"
        box.mkdir()
        (box / "state.json").write_text(json.dumps({"tenants": {}}))
        self.experiment = tmp / "fake.yaml"
        self.experiment.write_text(EXPERIMENT)
        self.log, self.journal = tmp / "fake.log", tmp / "journal.json"
        env = {**os.environ, "PATH": f"{FAKES}:{os.environ['PATH']}", "FAKE_LOG": str(self.log),
               "PYTHONPATH": f"{REPO}:{REPO / 'chaos'}", **fake_env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chaosomnisql", "run", str(self.experiment), "--dir", str(box),
             "--journal", str(self.journal), "--results", str(tmp / "results")], env=env,
            cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def wait_for(self, what: Callable[[list[str]], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not what(self.lines()):
            assert time.monotonic() < deadline, f"fake chaos never got there: {self.lines()}"
            time.sleep(0.05)

    def chaos_pid(self) -> int:
        return int(next(line for line in self.lines() if line.startswith("pid "))[4:])

    def finish(self) -> tuple[int, str, dict[str, object]]:
        try:
            out, _ = self.proc.communicate(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode, out, json.loads(self.journal.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _assert_failed_with_rollbacks(run: Run, signals: list[str]) -> dict[str, object]:
    code, out, journal = run.finish()
    assert code == 1 and "FAIL" in out and "PASS" not in out, out
    assert journal["status"] == "interrupted"
    played = journal["rollbacks"]
    assert [r["status"] for r in played] == ["succeeded"] * 3  # type: ignore[union-attr]
    note = journal["omnisql_interrupt"]
    assert note["requested"] is True and note["signals"] == signals  # type: ignore[index]
    assert run.lines().count("SIGINT") == 1, "chaos must get exactly one SIGINT"
    assert not _alive(run.chaos_pid()), "chaos outlived the wrapper"
    return journal


def test_sigint_to_the_wrappers_pid_only_is_a_failed_run(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.wait_for(lambda lines: any(x.startswith("pid ") for x in lines))
    os.kill(run.proc.pid, signal.SIGINT)  # the wrapper alone, not its group
    _assert_failed_with_rollbacks(run, ["SIGINT"])


def test_a_second_sigint_neither_orphans_chaos_nor_cuts_rollbacks(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.wait_for(lambda lines: any(x.startswith("pid ") for x in lines))
    os.kill(run.proc.pid, signal.SIGINT)
    run.wait_for(lambda lines: "rollback r1" in lines)
    os.kill(run.proc.pid, signal.SIGINT)
    _assert_failed_with_rollbacks(run, ["SIGINT", "SIGINT"])


def test_sigterm_to_the_group_twice_during_rollbacks(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.wait_for(lambda lines: any(x.startswith("pid ") for x in lines))
    os.killpg(run.proc.pid, signal.SIGTERM)  # as a CI runner or `kill -- -PGID` does
    run.wait_for(lambda lines: "rollback r2" in lines)
    os.killpg(run.proc.pid, signal.SIGTERM)
    _assert_failed_with_rollbacks(run, ["SIGTERM", "SIGTERM"])


def test_rollbacks_cut_short_elsewhere_are_played_again(tmp_path: Path) -> None:
    mark = tmp_path / "replayed"
    run = Run(tmp_path, FAKE_CUT_ROLLBACKS="1")
    run.experiment.write_text(EXPERIMENT.replace(
        "name: r1\n    provider: {type: python, module: os, func: getpid}",
        f"name: r1\n    provider: {{type: python, module: os, func: mkdir, "
        f"arguments: {{path: '{mark}'}}}}"))
    run.wait_for(lambda lines: any(x.startswith("pid ") for x in lines))
    os.kill(run.proc.pid, signal.SIGINT)
    code, out, journal = run.finish()
    assert code == 1 and "FAIL" in out, out
    assert len(journal["rollbacks"]) == 1  # type: ignore[arg-type]  # what chaos managed
    note = journal["omnisql_interrupt"]
    replayed = ["r1=succeeded", "r2=succeeded", "r3=succeeded"]
    assert note["rollbacks_replayed"] == replayed, note  # type: ignore[index]
    assert mark.exists()


def test_an_interrupt_before_chaos_wrote_anything_still_keeps_a_journal(tmp_path: Path) -> None:
    """The wrapper's timeout fired before chaos had written its journal or created the
    ``--results`` folder (a loaded machine, 00:30 UTC): the interrupt note is still kept,
    where the run said it would be, instead of a FileNotFoundError after the rollbacks."""
    from chaosomnisql.cli import Interrupts, _finish_interrupted

    experiment = tmp_path / "nothing_to_roll_back.yaml"
    experiment.write_text("title: fake\ndescription: no rollbacks\nmethod: []\n")
    guard = Interrupts(None)  # type: ignore[arg-type]  # no process: nothing to signal
    guard.signals.append("timeout")
    journal = tmp_path / "results-not-made-yet" / "journal.json"
    _finish_interrupted(journal, experiment, dict(os.environ), guard)
    kept = json.loads(journal.read_text())
    assert kept["status"] == "interrupted" and kept["omnisql_interrupt"]["signals"] == ["timeout"]
