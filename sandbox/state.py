"""The sandbox directory layout and its state file (`DIR/state.json`, mode 0600).

The state file is the one place other tools (chaos, loadtests) learn ports and API keys from,
so it is written atomically: a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PROVIDERS",
    "TENANTS",
    "USERS",
    "ZONES",
    "Layout",
    "default_dir",
    "free_port",
    "load_state",
    "pid_alive",
    "PortClaim",
    "PortClaimTimeout",
    "port_claim",
    "read_json_file",
    "write_state",
]

ZONES: tuple[str, ...] = ("az-a", "az-b", "az-c")
TENANTS: tuple[str, ...] = ("acme", "globex", "initech", "umbrella")
USERS: tuple[str, ...] = ("u1", "u2", "u3", "u4", "u5")
PROVIDERS: tuple[str, ...] = ("crm", "tickets")
LOOPBACK = "127.0.0.1"


def default_dir() -> Path:
    """`OMNISQL_SANDBOX_DIR` or `./.sandbox`."""
    return Path(os.environ.get("OMNISQL_SANDBOX_DIR") or ".sandbox").absolute()


@dataclass(frozen=True)
class Layout:
    """Paths inside one sandbox directory."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def config(self) -> Path:
        """The services' copy, written before they start; `state.json` appears only when all
        answer, so its existence means "up and ready" to other tools."""
        return self.root / "sandbox.json"

    @property
    def supervisor_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pg_primary(self) -> Path:
        return self.root / "pg-primary"

    @property
    def pg_replica(self) -> Path:
        return self.root / "pg-replica"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"


# Below the kernel's ephemeral range (32768-60999 by default): a port chosen there could be
# taken by some process's outgoing connection in the seconds before our service binds it.
_PORT_RANGE = (20000, 32000)
_chosen: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port free right now, not handed out before by this process."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*_PORT_RANGE)
        if port not in _chosen and _bindable(port):
            _chosen.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # crowded: let the kernel pick
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


#: One lock per user of the machine for every stand-in's ports (per user, so that it is
#: always writable; another user's stand-in has its ports bound or not yet, as before), and
#: beside it the ports each running stand-in was given, by its supervisord's pid.
PORT_LOCK = Path(tempfile.gettempdir()) / f"omnisql-sandbox-ports-{os.getuid()}.lock"


class PortClaimTimeout(Exception):
    """Another stand-in held the port lock for longer than the wait allowed."""


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (supervise, and the port registry)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:  # a zombie is not alive
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


class PortClaim:
    """The port lock, held. Every port of a running stand-in stays out of
    :func:`free_port`'s choice, including the ones not bound at this moment: a lost zone's
    engines, the cutover's green engines, a region's processes before they start again."""

    def __init__(self, registry: Path) -> None:
        self.registry = registry
        self.running: dict[str, list[int]] = {
            pid: ports for pid, ports in (read_json_file(registry) or {}).items()
            if pid.isdigit() and isinstance(ports, list) and pid_alive(int(pid))}
        for ports in self.running.values():
            _chosen.update(ports)
        self._before = set(_chosen)

    def register(self, pid: int) -> list[int]:
        """Record the ports chosen under this claim as those of the stand-in whose
        supervisord is ``pid`` (forgotten once that process has gone)."""
        ports = sorted(_chosen - self._before)
        write_state(self.registry, {**self.running, str(pid): ports})
        return ports


@contextlib.contextmanager
def port_claim(timeout: float = 300.0, lock: Path = PORT_LOCK) -> Iterator[PortClaim]:
    """Hold the machine's port lock from choosing a stand-in's ports until its services
    have bound them, and register them. :func:`free_port` only sees a port that is bound,
    so two stand-ins starting at once (two pytest workers, two ``sim conform`` runs) could
    otherwise both pick a port in the seconds between choosing and binding it, or one pick
    a port another has let go for a while (a lost zone), and one of them would fail.
    Raises :class:`PortClaimTimeout`, naming the holder, if it is not free within
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with open(lock, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    raise PortClaimTimeout(f"{lock} is held by pid {holder} (a stand-in "
                                           f"starting) for over {timeout:.0f}s") from None
                time.sleep(0.1)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield PortClaim(lock.with_suffix(".json"))
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically with mode 0600: the file holds API keys."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_state(root: Path, internal: bool = False) -> dict[str, Any]:
    """Read `root/state.json` (or the services' `sandbox.json`); FileNotFoundError when absent."""
    layout = Layout(root)
    with open(layout.config if internal else layout.state) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def read_json_file(path: Path) -> dict[str, Any] | None:
    """A JSON object written by :func:`write_state`, or None when it is absent or unreadable
    (a service then starts with its defaults rather than not at all)."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
