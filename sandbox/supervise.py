"""Process supervision with supervisord: generated config, XML-RPC over a unix socket.

Each AZ is a supervisor group (`az-a`, ...), so losing an AZ is one `stopProcessGroup` call
and restoring it one `startProcessGroup`. Shared services live in the `shared` group.
Processes are stopped as process groups (`stopasgroup`/`killasgroup`) so uvicorn workers or
PostgreSQL backends cannot outlive their supervisor entry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from supervisor.xmlrpc import SupervisorTransport

from sandbox.ownership import Identity, members, stop_members
from sandbox.pgcluster import pg_bindir, redis_binary
from sandbox.state import ZONES, Layout, pid_alive

__all__ = [
    "Program",
    "kill_survivors",
    "pid_alive",
    "programs_for",
    "render_config",
    "rpc",
    "shutdown",
    "start_supervisord",
    "survivors",
    "write_redis_conf",
]

CANARY_ZONE = "az-c"


@dataclass(frozen=True)
class Program:
    name: str
    group: str
    command: str
    user: str | None = None
    autorestart: bool = True
    stopsignal: str = "TERM"


def _py(service: str, root: Path, *extra: str) -> str:
    return " ".join([sys.executable, "-m", "sandbox.serve", service, "--dir", str(root), *extra])


def _zone_programs(root: Path, zone: str) -> list[Program]:
    progs = [
        Program(f"connector-{zone}", zone, _py("connector", root, "--zone", zone)),
        Program(f"engine-{zone}", zone, _py("engine", root, "--zone", zone, "--name",
                                            f"engine-{zone}")),
        # Green: the blue-green cutover's other colour, idle until traffic switches to it
        # (sandbox.cutover); in the zone's group, so a lost zone loses both colours.
        Program(f"engine-green-{zone}", zone, _py("engine", root, "--zone", zone, "--name",
                                                  f"engine-green-{zone}")),
    ]
    if zone == CANARY_ZONE:
        progs.append(Program("engine-canary", zone, _py("engine", root, "--zone", zone,
                                                         "--name", "engine-canary")))
    return progs


def programs_for(layout: Layout, state: dict[str, Any]) -> list[Program]:
    root, pg = layout.root, pg_bindir() / "postgres"
    redis_port = state["redis"]["port"]
    pg_user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
    shared = [
        Program("redis", "shared", f"{redis_binary()} {layout.redis_dir / 'redis.conf'} "
                f"--port {redis_port} --bind 127.0.0.1 "
                f"--save '' --appendonly no --set-proc-title no --dir {layout.redis_dir}"),
        # postgres: no autorestart, so a killed primary stays dead until someone acts;
        # SIGINT is PostgreSQL's fast shutdown for a clean `down`.
        Program("pg-primary", "shared", f"{pg} -D {layout.pg_primary}", pg_user, False, "INT"),
        Program("pg-replica", "shared", f"{pg} -D {layout.pg_replica}", pg_user, False, "INT"),
        *(Program(f"mock-{p}", "shared", _py("mock", root, "--name", p))
          for p in state["providers"]),
        Program("gateway", "shared", _py("gateway", root)),
        Program("admin", "shared", _py("admin", root)),
    ]
    return shared + [p for z in ZONES for p in _zone_programs(root, z)]


def write_redis_conf(layout: Layout, password: str) -> None:
    """The password lives in a 0600 file, not on a command line `ps` shows to everyone."""
    path = layout.redis_dir / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"requirepass {password}\n")


def _program_section(p: Program, layout: Layout, env: str) -> str:
    lines = [
        f"[program:{p.name}]", f"command={p.command}", "autostart=true",
        f"autorestart={'true' if p.autorestart else 'false'}", "startsecs=1",
        "startretries=3", f"stopsignal={p.stopsignal}", "stopwaitsecs=10",
        "stopasgroup=true", "killasgroup=true", "redirect_stderr=true",
        f"stdout_logfile={layout.logs / (p.name + '.log')}", "stdout_logfile_maxbytes=5MB",
        "stdout_logfile_backups=1", f"environment={env}",
    ]
    if p.user:
        lines.append(f"user={p.user}")
    return "\n".join(lines)


def render_config(layout: Layout, programs: list[Program], pg_password: str) -> str:
    """The config (mode 0600: it holds PGPASSWORD, which libpq in every service reads)."""
    pythonpath = str(Path(__file__).resolve().parent.parent)
    env = f'PYTHONPATH="{pythonpath}",PYTHONUNBUFFERED="1",PGPASSWORD="{pg_password}"'
    head = f"""[unix_http_server]
file={layout.supervisor_sock}
chmod=0700

[supervisord]
nodaemon=true
logfile={layout.logs / 'supervisord.log'}
pidfile={layout.root / 'supervisord.pid'}
childlogdir={layout.logs}
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{layout.supervisor_sock}
"""
    groups: dict[str, list[str]] = {}
    for p in programs:
        groups.setdefault(p.group, []).append(p.name)
    sections = [_program_section(p, layout, env) for p in programs]
    sections += [f"[group:{g}]\nprograms={','.join(names)}" for g, names in groups.items()]
    return head + "\n" + "\n\n".join(sections) + "\n"


def start_supervisord(layout: Layout) -> subprocess.Popen[bytes]:
    """supervisord in the foreground of its own session: Ctrl-C in our terminal reaches us,
    not it, so shutdown is always the orderly XML-RPC one."""
    with open(layout.logs / "supervisord.out", "ab") as out:  # the child keeps its own fd
        return subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(layout.supervisor_conf)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def rpc(layout: Layout, timeout: float = 30.0) -> Any:
    transport = SupervisorTransport(None, None, f"unix://{layout.supervisor_sock}")
    transport.timeout = timeout  # type: ignore[attr-defined]
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def shutdown(layout: Layout, pid: int | None, timeout: float = 40.0) -> None:
    """Ask supervisord to stop everything and exit; wait for it."""
    try:
        rpc(layout, timeout=5).supervisor.shutdown()
    except (OSError, xmlrpc.client.Error):
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[-1].split()[1])
        except OSError:
            break
    return pids


# What `down` may kill: only the kinds of process the sandbox itself starts.
_OURS = (b"sandbox.serve", b"supervisord", b"postgres", b"redis-server")


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _inside(entry: Path, root: Path) -> tuple[bool, bytes]:
    """Whether a /proc entry has an argument naming `root` or a path in it, or a cwd in it.

    Arguments are compared as whole paths, never as text: `/x/sb` is not inside `/x/sb2`.
    The cwd test catches PostgreSQL backends and Redis, which rewrite their titles."""
    try:
        cmdline = (entry / "cmdline").read_bytes()
    except OSError:
        return False, b""
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0")]
    if any(a.startswith("/") and _under(Path(a), root) for a in args):
        return True, cmdline
    try:
        cwd = Path(os.readlink(entry / "cwd"))
    except OSError:
        return False, cmdline
    return _under(cwd, root), cmdline


def survivors(root: Path, only_ours: bool = False) -> list[int]:
    """Live processes of the sandbox: its session's members (by PID and start time, see
    `sandbox.ownership`) plus any process with a path argument or cwd inside the dir (e.g. a
    bootstrap PostgreSQL); callers excluded."""
    mine = _ancestors()
    found = {i.pid for i in members(root)} - mine
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        inside, cmdline = _inside(entry, root)
        if only_ours and not any(tag in cmdline for tag in _OURS):
            continue
        if inside and pid_alive(int(entry.name)):
            found.add(int(entry.name))
    return sorted(found)


def kill_survivors(root: Path, grace: float = 5.0) -> list[int]:
    """Last resort after shutdown: TERM, then KILL, the sandbox's own leftovers (never, say,
    someone's `tail -f` of a log in the dir). Each is signalled only while its PID still has
    the start time it had when found, so a recycled PID is never hit."""
    idents = []
    for pid in survivors(root, only_ours=True):
        try:
            idents.append(Identity.of(pid))
        except psutil.Error:
            continue
    stop_members(idents, grace)
    return [i.pid for i in idents]
