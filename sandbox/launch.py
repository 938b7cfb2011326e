"""Bringing a sandbox up and down, in explicit phases.

build: allocate ports, generate keys and secrets, write the state file, initdb + seed +
basebackup PostgreSQL (with a temporary pg_ctl-started primary) → wire: render the
supervisord config → run: start supervisord and wait until every service answers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
import xmlrpc.client
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from sandbox import metadata, ownership, pgcluster
from sandbox import prometheus as prom  # issue 17: Prometheus over the stand-in
from sandbox.auth import admin_headers
from sandbox.catalog import CATALOG
from sandbox.state import (
    LOOPBACK,
    PROVIDERS,
    TENANTS,
    USERS,
    ZONES,
    Layout,
    PortClaim,
    PortClaimTimeout,
    free_port,
    port_claim,
    write_state,
)
from sandbox.supervise import (
    kill_survivors,
    pid_alive,
    programs_for,
    render_config,
    rpc,
    shutdown,
    start_supervisord,
    write_redis_conf,
)
from sandbox.tokens import new_token_key

__all__ = [
    "SandboxError",
    "bootstrap_postgres",
    "build_state",
    "running_pid",
    "start",
    "stop",
    "wait_ready",
]

CANARY_ZONE = "az-c"


class SandboxError(Exception):
    """A problem the user can fix (exit code 2)."""


def running_pid(root: Path) -> int | None:
    """supervisord's PID if this directory's sandbox runs (same PID *and* start time)."""
    lead = ownership.leader(root)
    return lead.pid if lead is not None and lead.alive() else None


def _clear_remains(layout: Layout) -> None:
    """Before `up` touches anything: stop the remains of a crashed sandbox (supervisord gone,
    its programs still serving) by identity, and refuse while a data dir is still in use."""
    remains = ownership.members(layout.root)
    if remains:
        print(f"found {len(remains)} processes of a crashed sandbox in {layout.root} "
              f"(supervisord gone); stopping them", file=sys.stderr, flush=True)
        left = ownership.stop_members(remains)
        if left:
            raise SandboxError(f"could not stop the crashed sandbox's PIDs "
                               f"{[i.pid for i in left]}; stop them, then `up` again")
    busy = ownership.data_dirs_in_use(layout)
    if busy:
        raise SandboxError("PostgreSQL data dirs still in use by a process this sandbox does "
                           f"not own: {', '.join(busy)}; stop it (or `down`), then `up` again")
    for stale in (layout.supervisor_sock, layout.root / "supervisord.pid"):
        stale.unlink(missing_ok=True)


def _url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def build_state(root: Path) -> dict[str, Any]:
    services = {f"mock-{p}": _url(free_port()) for p in PROVIDERS}
    services.update({"gateway": _url(free_port()), "admin": _url(free_port()),
                     "engine-canary": _url(free_port())})
    for zone in ZONES:
        services[f"engine-{zone}"] = _url(free_port())
        services[f"engine-green-{zone}"] = _url(free_port())  # sandbox.cutover
        services[f"connector-{zone}"] = _url(free_port())
    return {
        "dir": str(root), "pid": None, "started_at": None,
        "gateway_url": services["gateway"], "admin_url": services["admin"],
        "zones": list(ZONES),
        "providers": {p: services[f"mock-{p}"] for p in PROVIDERS},
        "redis": {"host": LOOPBACK, "port": free_port()},
        "postgres": {"primary": {"host": LOOPBACK, "port": free_port(), "zone": "az-a"},
                     "replica": {"host": LOOPBACK, "port": free_port(), "zone": "az-b"}},
        "tenants": {t: {"api_key": secrets.token_urlsafe(32), "users": list(USERS)}
                    for t in TENANTS},
        "services": services,
        "admin_token": secrets.token_urlsafe(32),
        "internal": {"canary_zone": CANARY_ZONE,
                     "oauth_clients": {t: secrets.token_urlsafe(24) for t in TENANTS},
                     "gateway_internal_url": _url(free_port()),
                     "service_token": secrets.token_urlsafe(32),
                     "redis_password": secrets.token_urlsafe(32),
                     "pg_password": secrets.token_urlsafe(32),
                     "token_key": new_token_key()},
    }


def _prepare_dir(layout: Layout) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.root.chmod(0o711)  # postgres must traverse it; nothing here is world-readable
    for old in (layout.pg_primary, layout.pg_replica, layout.redis_dir, layout.logs):
        shutil.rmtree(old, ignore_errors=True)
    layout.logs.mkdir()
    layout.redis_dir.mkdir()


def bootstrap_postgres(layout: Layout, state: dict[str, Any]) -> None:
    pg = state["postgres"]
    log = layout.logs / "pg-bootstrap.log"
    # libpq (psycopg, pg_basebackup) reads it here and in every service (supervisord's env)
    os.environ["PGPASSWORD"] = state["internal"]["pg_password"]
    pgcluster.init_primary(layout.pg_primary, pg["primary"]["port"], log,
                           state["internal"]["pg_password"])
    pgcluster.start_server(layout.pg_primary, layout.logs / "pg-bootstrap-server.log")
    try:
        keys = {t: v["api_key"] for t, v in state["tenants"].items()}
        conns = {p: (state["providers"][p], sorted(CATALOG[p])) for p in state["providers"]}
        metadata.seed(pg["primary"]["port"], keys, conns)
        pgcluster.make_replica(pg["primary"]["port"], layout.pg_replica,
                               pg["replica"]["port"], log)
    finally:
        pgcluster.stop_server(layout.pg_primary, log)


def _service_ready(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _pg_ready(state: dict[str, Any]) -> bool:
    roles = [metadata.node_role(state["postgres"][r]["port"]) for r in ("primary", "replica")]
    return roles == ["primary", "replica"]


def _redis_ready(state: dict[str, Any]) -> bool:
    try:
        return bool(redis.Redis(host=LOOPBACK, port=state["redis"]["port"],
                                password=state["internal"]["redis_password"],
                                socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n    ".join(text[-lines:]) or "(empty log)"


def fatal_services(layout: Layout) -> list[str]:
    """Programs supervisord gave up on (FATAL: exited during start `startretries` times), each
    with its log's last lines; [] while none (or while supervisord cannot be asked yet)."""
    try:
        infos = rpc(layout, timeout=2).supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error):
        return []
    return [f"{i['name']} is {i['statename']}; last lines of "
            f"{layout.logs / (i['name'] + '.log')}:\n    "
            f"{_log_tail(layout.logs / (i['name'] + '.log'))}"
            for i in infos if i["statename"] == "FATAL"]


def wait_ready(state: dict[str, Any], pid: int, timeout: float = 90.0) -> None:
    """Poll until every service answers; fail at once, naming it, when supervisord marks a
    program FATAL (a taken port, a broken binary) instead of waiting the full timeout."""
    layout, deadline = Layout(Path(state["dir"])), time.monotonic() + timeout
    with httpx.Client() as http:
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise SandboxError("supervisord exited during start; see "
                                   f"{layout.logs / 'supervisord.log'}")
            fatal = fatal_services(layout)
            if fatal:
                raise SandboxError("service failed to start: " + "\n".join(fatal))
            pending = [n for n, u in state["services"].items() if not _service_ready(http, u)]
            if not pending and _redis_ready(state) and _pg_ready(state):
                return
            time.sleep(0.3)
    raise SandboxError(f"services not ready after {timeout:.0f}s: {pending}; see {layout.logs}")


def _build_and_run(root: Path, layout: Layout, prometheus: bool,
                   claim: PortClaim) -> dict[str, Any]:
    """Build, wire and run (the ports chosen and bound); stops what it started on failure."""
    if root.is_dir():
        _clear_remains(layout)
    _prepare_dir(layout)
    state = build_state(root)
    if prometheus:  # issue 17
        prom.add_to_state(state)
    write_state(layout.config, state)
    bootstrap_postgres(layout, state)
    write_redis_conf(layout, state["internal"]["redis_password"])
    try:  # issue 17: Prometheus runs under the same supervisord
        programs = programs_for(layout, state) + prom.programs(root, state)
    except prom.PrometheusError as exc:
        raise SandboxError(str(exc)) from None
    layout.supervisor_conf.write_text(render_config(layout, programs,
                                                    state["internal"]["pg_password"]))
    layout.supervisor_conf.chmod(0o600)
    proc = start_supervisord(layout)
    ownership.record_leader(layout, proc.pid)
    state["pid"] = proc.pid
    write_state(layout.config, state)
    try:
        wait_ready(state, proc.pid)
        if not prom.wait_ready(state):  # issue 17
            raise SandboxError("prometheus not ready after 30s; see DIR/logs/prometheus.log")
        claim.register(proc.pid)
        _issue_tokens(state)
        ownership.record_members(root)
    except BaseException:
        stop(root)
        raise
    return state


def start(root: Path, prometheus: bool = True) -> dict[str, Any]:
    """Build, wire and run; returns the state (with supervisord's pid) once all answer."""
    layout = Layout(root)
    if running_pid(root) is not None:
        raise SandboxError(f"a sandbox is already running in {root}")
    problem = pgcluster.check_traversable(root.parent)
    if problem:
        raise SandboxError(problem)
    broken = pgcluster.check_binaries()
    if broken:
        raise SandboxError("; ".join(broken))
    # From choosing ports to their services answering, no other stand-in chooses any.
    try:
        with port_claim() as claim:
            state = _build_and_run(root, layout, prometheus, claim)
    except PortClaimTimeout as exc:
        raise SandboxError(str(exc)) from None
    state["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_state(layout.config, state)
    write_state(layout.state, state)
    return state


def _issue_tokens(state: dict[str, Any]) -> None:
    # The control plane's first bulk refresh: connectors find tokens waiting in the store.
    with httpx.Client(timeout=10.0, headers=admin_headers(state["admin_token"])) as http:
        for provider in state["providers"]:
            resp = http.post(f"{state['admin_url']}/admin/tokens/refresh",
                             json={"provider": provider})
            resp.raise_for_status()


def stop(root: Path) -> list[int]:
    """Stop supervisord and everything under it; return pids that had to be killed."""
    layout = Layout(root)
    pid = running_pid(root)  # never a recycled PID: the recorded start time must match
    if pid is not None:
        shutdown(layout, pid)
    leftovers = kill_survivors(root)
    for done in (layout.state, layout.config, layout.supervisor_sock,
                 layout.root / "supervisord.pid"):
        done.unlink(missing_ok=True)
    return leftovers


def process_table(root: Path) -> dict[str, str]:
    infos = rpc(Layout(root), timeout=5).supervisor.getAllProcessInfo()
    return {f"{i['group']}:{i['name']}": str(i["statename"]) for i in infos}
