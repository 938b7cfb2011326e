"""The control plane's state and levers: Redis, the gateway, engines, supervisord, PostgreSQL.

Blocking clients (supervisor XML-RPC, psycopg) run in worker threads so the admin service
keeps answering probes while a promotion or an AZ stop is in progress.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import redis.asyncio as aioredis

from sandbox import metadata
from sandbox.admin.lag import LagSeries, read_lag
from sandbox.admin.leases import AuditLog, Leases
from sandbox.admin.snapshots import SnapshotSchedule
from sandbox.auth import internal_headers
from sandbox.errors import ApiError
from sandbox.pgcluster import make_replica
from sandbox.state import Layout, write_state
from sandbox.supervise import rpc
from sandbox.tokens import TokenCipher

if TYPE_CHECKING:
    from sandbox.admin.canary import Analysis
    from sandbox.admin.token_refresh import PacedRefresh

__all__ = ["ControlPlane", "FaultLog", "PgNode"]


@dataclass(frozen=True)
class PgNode:
    name: str  # supervisor program name
    port: int
    zone: str


@dataclass
class FaultLog:
    """What the lab has broken, so `GET /faults` can tell and `/faults/reset` can undo."""

    zones_lost: set[str] = field(default_factory=set)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens_expired: dict[str, int] = field(default_factory=dict)
    metadata_primary_killed: bool = False


class ControlPlane:
    def __init__(self, root: Path, state: dict[str, Any]) -> None:
        self.layout = Layout(root)
        self.state = state
        pg = state["postgres"]
        self.nodes = [PgNode("pg-primary", pg["primary"]["port"], pg["primary"]["zone"]),
                      PgNode("pg-replica", pg["replica"]["port"], pg["replica"]["zone"])]
        self.primary_name = "pg-primary"  # the designated primary; changes on promotion
        self.promoted = False
        self.demoted: set[str] = set()  # old primaries that must be rebuilt before they run
        self.faults = FaultLog()
        self.lag = LagSeries()  # the replica's lag: samples, and at the last loss (admin.lag)
        self.audit = AuditLog(self.layout.logs / "audit.log")
        self.leases = Leases(self.audit)
        self.canary: dict[str, Any] | None = None
        self.analysis: Analysis | None = None  # the last canary analysis (sandbox.admin.canary)
        self.token_jobs: dict[str, PacedRefresh] = {}  # paced bulk refreshes (token_refresh)
        self.promoted_release = False  # every engine runs the canary's release
        self.colour = "blue"  # the engines serving: blue, or green after a cutover (.release)
        self.region: dict[str, Any] | None = None  # a region loss's failover (admin.region)
        self.region_task: asyncio.Task[None] | None = None
        # The metadata snapshots a region's secondary restores (admin.snapshots).
        self.snapshots = SnapshotSchedule(self.layout.root / "metadata-snapshots")
        self.store = aioredis.Redis(host="127.0.0.1", port=state["redis"]["port"],
                                    password=state["internal"]["redis_password"],
                                    socket_timeout=2.0, socket_connect_timeout=2.0)
        self.cipher = TokenCipher(state["internal"]["token_key"])
        self.http = httpx.AsyncClient(
            timeout=10.0, headers=internal_headers(state["internal"]["service_token"]))

    async def close(self) -> None:
        self.leases.cancel_all()
        if self.region_task is not None:
            self.region_task.cancel()
        await self.snapshots.stop()
        if self.analysis is not None and self.analysis.task is not None:
            self.analysis.task.cancel()
        for job in self.token_jobs.values():
            if job.task is not None:
                job.task.cancel()
        await self.http.aclose()
        await self.store.aclose()

    # --- supervisord -------------------------------------------------------------------
    async def supervisor(self, method: str, *args: Any) -> Any:
        def call() -> Any:
            return getattr(rpc(self.layout).supervisor, method)(*args)
        try:
            return await asyncio.to_thread(call)
        except xmlrpc.client.Fault as fault:
            # ALREADY_STARTED / NOT_RUNNING make start/stop idempotent; anything else is real.
            if "ALREADY_STARTED" in fault.faultString or "NOT_RUNNING" in fault.faultString:
                return None
            raise ApiError(502, "SUPERVISOR_ERROR", fault.faultString) from None

    # --- metadata ----------------------------------------------------------------------
    def node(self, name: str) -> PgNode:
        return next(n for n in self.nodes if n.name == name)

    @property
    def primary(self) -> PgNode:
        return self.node(self.primary_name)

    @property
    def replica(self) -> PgNode:
        return next(n for n in self.nodes if n.name != self.primary_name)

    async def role(self, node: PgNode) -> str:
        return await asyncio.to_thread(metadata.node_role, node.port)

    async def metadata_status(self) -> dict[str, Any]:
        roles = await asyncio.gather(self.role(self.primary), self.role(self.replica))
        lag = await asyncio.to_thread(metadata.replay_lag, self.primary.port)
        return {
            "primary": self._node_json(self.primary, roles[0]),
            "replica": self._node_json(self.replica, roles[1]),
            "replica_lag_seconds": lag if roles[1] == "replica" else None,
            "promoted": self.promoted,
            "needs_rebuild": sorted(self.demoted),
        }

    @staticmethod
    def _node_json(node: PgNode, role: str) -> dict[str, Any]:
        return {"name": node.name, "host": "127.0.0.1", "port": node.port, "zone": node.zone,
                "role": role}

    async def kill_node(self, node: PgNode) -> None:
        if node.name == self.primary_name:  # the RPO of this loss: the lag just before it
            self.lag.loss(node.name, await read_lag(node.port))
        # SIGQUIT is PostgreSQL's immediate shutdown: no checkpoint, WAL not yet sent is lost,
        # as in a crash; unlike SIGKILL it also takes the backends down with the postmaster.
        await self.supervisor("signalProcess", f"shared:{node.name}", "QUIT")

    def may_start(self, node: PgNode) -> bool:
        """A demoted primary would be a second writable primary (split brain): never restart."""
        return node.name not in self.demoted

    async def promote(self) -> dict[str, Any]:
        target = self.replica
        try:  # a busy machine can make a healthy standby slow to answer: give it a moment
            await self.wait_role(target, "replica", timeout=10.0)
        except ApiError:
            raise ApiError(409, "CONFLICT", f"{target.name} is not a running replica") from None
        # Fence the old primary first if it is still up: a planned switchover, not a split.
        await self.supervisor("stopProcess", f"shared:{self.primary.name}", True)
        await asyncio.to_thread(metadata.promote, target.port)
        self.demoted.add(self.primary_name)
        self.primary_name, self.promoted = target.name, True
        return await self.metadata_status()

    async def rebuild(self) -> dict[str, Any]:
        """Re-clone a demoted primary as a streaming replica of the current primary."""
        if not self.demoted:
            raise ApiError(409, "CONFLICT", "no demoted primary to rebuild")
        if await self.role(self.primary) != "primary":
            raise ApiError(503, "METADATA_UNAVAILABLE", "the current primary is down")
        node = self.replica
        datadir = self.layout.root / node.name
        log = self.layout.logs / "pg-rebuild.log"
        await self.supervisor("stopProcess", f"shared:{node.name}", True)
        await asyncio.to_thread(shutil.rmtree, datadir, True)
        await asyncio.to_thread(make_replica, self.primary.port, datadir, node.port, log)
        self.demoted.discard(node.name)
        await self.supervisor("startProcess", f"shared:{node.name}", True)
        await self.wait_role(node, "replica", timeout=60.0)
        return await self.metadata_status()

    async def wait_back(self, node: PgNode, timeout: float = 30.0) -> bool:
        """After a restart: wait until the node serves in its role and, for the replica, streams
        again. Without this a "restored" zone could hand the next failover a replica that has
        not caught up, and every acknowledged write would look lost."""
        expected = "primary" if node.name == self.primary_name else "replica"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self.wait_role(node, expected, timeout)
        except ApiError:
            return False
        while expected == "replica" and loop.time() < deadline:
            if await asyncio.to_thread(metadata.replay_lag, self.primary.port) is not None:
                return True
            await asyncio.sleep(0.2)
        return expected == "primary"

    async def wait_role(self, node: PgNode, role: str, timeout: float) -> None:
        """Poll until the node answers in `role`; a fresh standby needs a moment to accept."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.role(node) != role:
            if asyncio.get_running_loop().time() > deadline:
                raise ApiError(504, "UPSTREAM_TIMEOUT", f"{node.name} did not come up as {role}")
            await asyncio.sleep(0.2)

    # --- peers ---------------------------------------------------------------------------
    def service_url(self, name: str) -> str:
        return str(self.state["services"][name])

    @property
    def options_file(self) -> Path:
        return self.layout.root / "cache-options.json"

    def saved_options(self) -> dict[str, str]:
        try:
            saved: dict[str, str] = json.loads(self.options_file.read_text())
        except (OSError, ValueError):
            return {}
        return saved

    def save_options(self, updates: dict[str, str]) -> None:
        """Remember the cache options the admin API set: `sandbox.admin.persist` re-applies
        them when Redis restarts empty."""
        write_state(self.options_file, {**self.saved_options(), **updates})

    @property
    def gateway_internal(self) -> str:
        """The gateway's internal listener (its `/internal/*` routes answer only there)."""
        return str(self.state["internal"]["gateway_internal_url"])

    async def post(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            resp = await self.http.post(url, json=body or {})
        except httpx.HTTPError:
            raise ApiError(502, "UPSTREAM_ERROR", "a sandbox service is unreachable") from None
        data: dict[str, Any] = resp.json()
        if resp.status_code >= 400:
            err = data.get("error", {})
            raise ApiError(resp.status_code, err.get("code", "UPSTREAM_ERROR"),
                           err.get("message", "upstream failed"))
        return data
