"""Process ownership by identity and fast, named start-up failures (issue 16, items 1-2).

Each test reproduces a defect: `down` of one directory killing another sandbox whose path it
prefixes; a kill -9'd supervisord leaving a live stack that `status` called "not running" and
`up` started beside; a taken port or a broken binary making `up` wait 90 s naming nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import launch, ownership
from sandbox.supervise import survivors

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {**(env or os.environ), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sandbox", *args], capture_output=True,
                          text=True, check=False, timeout=timeout, env=env, cwd=REPO)


@pytest.fixture()
def tmp_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="omnisql-own-"))
    root.chmod(0o711)
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _decoy(box: Path) -> subprocess.Popen[bytes]:
    """A process that looks like a sandbox service of `box` (argument and cwd inside it)."""
    box.mkdir()
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "sandbox.serve", "--dir", str(box)], cwd=box,
                            start_new_session=True)


def test_down_of_a_prefix_dir_leaves_the_other_sandbox_alone(tmp_root: Path) -> None:
    other = _decoy(tmp_root / "sb2")
    try:
        time.sleep(0.3)
        assert other.pid not in survivors(tmp_root / "sb")
        down = cli("down", "--dir", str(tmp_root / "sb"), timeout=60)
        assert down.returncode == 0, down.stderr
        assert other.poll() is None, "down --dir sb killed a process of sb2"
        assert other.pid in survivors(tmp_root / "sb2")
    finally:
        other.kill()
        other.wait()


def test_broken_redis_binary_on_path_fails_up_at_once(tmp_root: Path) -> None:
    fake = tmp_root / "bin"
    fake.mkdir()
    (fake / "redis-server").write_text("#!/bin/sh\necho 'cannot run' >&2\nexit 3\n")
    (fake / "redis-server").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    started = time.monotonic()
    up = cli("up", "--detach", "--dir", str(tmp_root / "sb"), env=env, timeout=60)
    assert up.returncode == 2
    assert f"{fake}/redis-server" in up.stderr and "cannot run" in up.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_root / "sb" / "pg-primary").exists(), "something started before the check"


@pytest.mark.sandbox
@pytest.mark.timeout(240)
def test_taken_port_fails_within_seconds_naming_the_service(
        tmp_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    squatter = socket.socket()
    real_build = launch.build_state

    def build_and_squat(root: Path) -> dict[str, Any]:
        state = real_build(root)
        squatter.bind(("127.0.0.1", state["redis"]["port"]))
        squatter.listen()
        return state

    monkeypatch.setattr(launch, "build_state", build_and_squat)
    box = tmp_root / "sb"
    try:
        with pytest.raises(launch.SandboxError) as err:
            launch.start(box)
        begun = os.path.getmtime(box / "supervisord.conf")
        assert time.time() - begun < 30, "took longer than supervisord needs to give up"
        assert "redis is FATAL" in str(err.value)
        assert "Address already in use" in str(err.value)  # redis's own log line
        assert survivors(box) == []
    finally:
        squatter.close()
        launch.stop(box)


def _supervisord(box: Path) -> int:
    lead = ownership.leader(box)
    assert lead is not None and lead.alive()
    return lead.pid


@pytest.mark.sandbox
@pytest.mark.timeout(400)
def test_crashed_supervisord_is_reported_then_adopted_by_up(tmp_root: Path) -> None:
    box = tmp_root / "sb"
    try:
        assert cli("up", "--detach", "--dir", str(box)).returncode == 0
        os.kill(_supervisord(box), signal.SIGKILL)
        time.sleep(1.0)
        orphans = ownership.members(box)
        assert len(orphans) >= 10  # the programs and PostgreSQL's backends live on
        status = cli("status", "--dir", str(box), timeout=30)
        assert status.returncode == 3 and "crashed" in status.stdout
        again = cli("up", "--detach", "--dir", str(box))
        assert again.returncode == 0, again.stderr[-3000:]
        assert "crashed sandbox" in again.stderr
        assert not any(o.alive() for o in orphans), "the old stack still runs beside the new"
        assert cli("status", "--dir", str(box), timeout=30).returncode == 0
    finally:
        cli("down", "--dir", str(box), timeout=90)
    assert survivors(box) == []
    assert cli("status", "--dir", str(box), timeout=30).returncode == 1
