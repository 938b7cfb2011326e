"""The gateway's view of metadata: API keys and user caps held in memory, the query log
written in batches.

Nothing here runs per request against PostgreSQL: keys and caps are reloaded every few
seconds (and on demand, when the admin API changes a cap), and query-log rows are flushed
once a second. When the metadata database is unreachable the last good copy keeps serving,
which is what lets the data plane ride out a metadata failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field

import psycopg

__all__ = ["Directory", "LogRow"]

RELOAD_SECONDS = 5.0
FLUSH_SECONDS = 1.0
MAX_PENDING_LOG = 20_000

LogRow = tuple[str, str, str, int, float]  # tenant, user, sql hash, status, latency ms


def _conninfo(ports: list[int], attrs: str) -> str:
    hosts = ",".join("127.0.0.1" for _ in ports)
    plist = ",".join(str(p) for p in ports)
    return (f"host={hosts} port={plist} user=postgres dbname=postgres connect_timeout=2 "
            f"target_session_attrs={attrs}")


@dataclass
class Directory:
    """API-key hashes → tenant, (tenant, user) → cap, and a pending query log."""

    ports: list[int]
    keys: dict[str, str] = field(default_factory=dict)
    caps: dict[tuple[str, str], int] = field(default_factory=dict)
    pending_log: list[LogRow] = field(default_factory=list)
    loaded: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def tenant_for(self, api_key: str) -> str | None:
        return self.keys.get(hashlib.sha256(api_key.encode()).hexdigest())

    def cap_for(self, tenant: str, user: str) -> int | None:
        """The user's own cap, else the tenant's ``*`` cap (a scenario's ``user: "*"``)."""
        cap = self.caps.get((tenant, user))
        return self.caps.get((tenant, "*")) if cap is None else cap

    def log(self, row: LogRow) -> None:
        if len(self.pending_log) < MAX_PENDING_LOG:  # shed, never block, when PG is away
            self.pending_log.append(row)

    def reload_soon(self) -> None:
        self._wake.set()

    async def reload(self) -> None:
        # Reads may come from either node: the replica has the same keys.
        async with await psycopg.AsyncConnection.connect(
            _conninfo(self.ports, "any"), autocommit=True
        ) as conn:
            keys = await (await conn.execute("SELECT key_hash, tenant FROM api_keys")).fetchall()
            caps = await (await conn.execute(
                "SELECT tenant, user_name, max_concurrency FROM user_caps")).fetchall()
        self.keys = {h: t for h, t in keys}
        self.caps = {(t, u): int(c) for t, u, c in caps}
        self.loaded = True

    async def reload_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.reload()
            # Retry quickly until the first load succeeds (PostgreSQL may start after us).
            wait = RELOAD_SECONDS if self.loaded else 0.2
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            with contextlib.suppress(Exception):
                await self.flush()

    async def flush(self) -> None:
        if not self.pending_log:
            return
        rows, self.pending_log = self.pending_log, []
        try:
            async with await psycopg.AsyncConnection.connect(
                _conninfo(self.ports, "read-write"), autocommit=True
            ) as conn, conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO query_log (tenant, user_name, sql_hash, status, latency_ms)"
                    " VALUES (%s, %s, %s, %s, %s)", rows)
        except Exception:
            self.pending_log = rows + self.pending_log[: MAX_PENDING_LOG - len(rows)]
            raise
