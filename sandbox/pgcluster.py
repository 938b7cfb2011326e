"""Building the PostgreSQL pair on disk: initdb, configuration, a streaming replica.

PostgreSQL refuses to run as root, so every server-side command runs as the `postgres` user
when we are root. The replica is asynchronous on purpose: `synchronous_commit = on` with no
`synchronous_standby_names` acknowledges a commit after the primary's own WAL flush, so a
primary loss can lose acknowledged writes and RPO is something to measure, not zero by design.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "as_postgres",
    "check_binaries",
    "check_traversable",
    "init_primary",
    "make_replica",
    "pg_bindir",
    "redis_binary",
    "start_server",
    "stop_server",
]

PG_USER = "postgres"


_PG_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_basebackup")


def pg_bindir() -> Path:
    """PostgreSQL's bin dir: the one of `initdb` on `PATH` (symlinks resolved, so its sibling
    tools are found), else the newest /usr/lib/postgresql/<major>/bin (Debian keeps it off
    `PATH`). Every tool the sandbox runs must be there and executable."""
    on_path = shutil.which("initdb")
    if on_path:
        bindir = Path(on_path).resolve().parent
    else:
        found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
        if not found:
            raise FileNotFoundError("PostgreSQL not found: no initdb on PATH nor under "
                                    "/usr/lib/postgresql (apt-get install postgresql)")
        bindir = max(found, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    missing = [t for t in _PG_TOOLS if not os.access(bindir / t, os.X_OK)]
    if missing:
        raise FileNotFoundError(f"PostgreSQL in {bindir} lacks {', '.join(missing)}")
    return bindir


def redis_binary() -> str:
    """`redis-server` from `PATH`, else /usr/bin (as documented)."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if found is None:
        raise FileNotFoundError("redis-server not found on PATH (apt-get install redis-server)")
    return found


def _version_ok(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"
    out = (done.stdout + done.stderr).strip().splitlines()
    return None if done.returncode == 0 else f"{cmd[0]} --version exited {done.returncode}: " \
        f"{out[-1] if out else 'no output'}"


def check_binaries() -> list[str]:
    """Problems with the binaries `up` needs (each named with its path); [] when all run.
    Checked before anything starts, so a broken binary fails `up` at once."""
    try:
        tools = [redis_binary(), *(str(pg_bindir() / t) for t in ("postgres", "initdb"))]
    except FileNotFoundError as exc:
        return [str(exc)]
    return [p for p in (_version_ok([t, "--version"]) for t in tools) if p]


def _as_root() -> bool:
    return os.geteuid() == 0


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *cmd] if _as_root() else cmd


def _run(cmd: list[str], log: Path) -> None:
    # libpq clients (pg_basebackup) take the password from PGPASSWORD, which `up` and
    # supervisord set; runuser keeps the environment.
    with open(log, "ab") as out:
        subprocess.run(as_postgres(cmd), check=True, stdout=out, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=120)


def _own(path: Path) -> None:
    if _as_root():
        entry = pwd.getpwnam(PG_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def check_traversable(path: Path) -> str | None:
    """Why the postgres user cannot reach `path`, or None when it can."""
    if not _as_root():
        return None
    for parent in [path, *path.parents]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            return f"{parent} is not traversable by the postgres user (chmod o+x it)"
    return None


_PRIMARY_CONF = """
# sandbox: loopback only, TCP only, an asynchronous streaming replica
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 5
wal_keep_size = 64MB
hot_standby = on
synchronous_commit = on
synchronous_standby_names = ''
shared_buffers = 32MB
max_connections = 60
logging_collector = off
"""


_HBA = """# sandbox: TCP on loopback only, every role with its SCRAM password, no trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""


def init_primary(datadir: Path, port: int, log: Path, password: str) -> None:
    datadir.mkdir(mode=0o700)
    _own(datadir)
    bindir = pg_bindir()
    pwfile = datadir.parent / ".pg-initpw"  # read once by initdb, then removed
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    _own(pwfile)
    try:
        _run([str(bindir / "initdb"), "-D", str(datadir), "-U", PG_USER,
              "--auth=scram-sha-256", f"--pwfile={pwfile}", "-N", "-E", "UTF8", "--locale=C"],
             log)
    finally:
        pwfile.unlink(missing_ok=True)
    with open(datadir / "postgresql.conf", "a") as fh:
        fh.write(_PRIMARY_CONF.format(port=port))
    (datadir / "pg_hba.conf").write_text(_HBA)


def make_replica(primary_port: int, datadir: Path, port: int, log: Path) -> None:
    """pg_basebackup -R from the running primary, then give the copy its own port."""
    bindir = pg_bindir()
    datadir.mkdir(mode=0o700)
    _own(datadir)
    _run([str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary_port),
          "-U", PG_USER, "-D", str(datadir), "-R", "-X", "stream", "-c", "fast"], log)
    with open(datadir / "postgresql.conf", "a") as fh:
        fh.write(f"\nport = {port}\n")


def start_server(datadir: Path, log: Path) -> None:
    """Start with pg_ctl for bootstrapping only; supervisord runs the real thing."""
    log.touch()
    _own(log)  # the server, not us, writes this log
    _run([str(pg_bindir() / "pg_ctl"), "-D", str(datadir), "-w", "-t", "60",
          "-l", str(log), "start"], log.with_suffix(".ctl.log"))


def stop_server(datadir: Path, log: Path) -> None:
    _run([str(pg_bindir() / "pg_ctl"), "-D", str(datadir), "-w", "-m", "fast", "stop"], log)
