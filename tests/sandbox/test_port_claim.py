"""The machine's port lock and registry: two stand-ins starting at once never share a port.

No stand-in is started here: the lock is held by a child process, and the registry is a
file in the test's own temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox import state
from sandbox.state import PortClaimTimeout, free_port, port_claim


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing handed out before in this process; every port of a 10-port range bindable."""
    monkeypatch.setattr(state, "_chosen", set())
    monkeypatch.setattr(state, "_PORT_RANGE", (40000, 40010))
    monkeypatch.setattr(state, "_bindable", lambda port: True)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_running_stand_ins_ports_are_not_handed_out_even_when_unbound(
        fresh: None, tmp_path: Path) -> None:
    """A lost zone's engines have let their ports go; the registry still keeps them."""
    lock = tmp_path / "ports.lock"
    running = list(range(40000, 40009))  # every port of the range but 40009, our own pid
    lock.with_suffix(".json").write_text(json.dumps({str(os.getpid()): running}))
    with port_claim(lock=lock) as claim:
        assert free_port() == 40009
        assert claim.register(4242) == [40009]
    registry = json.loads(lock.with_suffix(".json").read_text())
    assert registry["4242"] == [40009]  # the new stand-in, beside the running one
    assert registry[str(os.getpid())] == running


def test_a_stopped_stand_ins_ports_are_forgotten(fresh: None, tmp_path: Path) -> None:
    lock = tmp_path / "ports.lock"
    dead = str(_dead_pid())
    lock.with_suffix(".json").write_text(json.dumps({dead: list(range(40000, 40010))}))
    with port_claim(lock=lock) as claim:
        chosen = {free_port() for _ in range(10)}
        assert chosen == set(range(40000, 40010))
        claim.register(4242)
    assert dead not in json.loads(lock.with_suffix(".json").read_text())


def test_a_second_claim_waits_for_the_first_and_names_its_holder(tmp_path: Path) -> None:
    lock = tmp_path / "ports.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from sandbox.state import port_claim
            with port_claim(lock=Path({str(lock)!r})):
                print("held", flush=True)
                sys.stdin.readline()  # until the test lets go
            """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PortClaimTimeout, match=f"held by pid {holder.pid}"):
            with port_claim(timeout=0.5, lock=lock):
                pass
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        with port_claim(timeout=5, lock=lock) as claim:  # free again
            assert claim.running == {}
    finally:
        holder.kill()
        holder.wait()
