"""OmniSQL's metadata in PostgreSQL: schema, seed, roles, promotion, sequenced writes.

API keys are stored as SHA-256 hashes; the plain keys exist only in the state file.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import psycopg

__all__ = [
    "SCHEMA",
    "LagReading",
    "conninfo",
    "hash_key",
    "max_sequence",
    "node_role",
    "promote",
    "replay_lag",
    "replication_lag",
    "seed",
    "write_sequenced",
]

SCHEMA = """
CREATE TABLE tenants (name text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE api_keys (key_hash text PRIMARY KEY, tenant text NOT NULL REFERENCES tenants,
                       created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE connectors (name text PRIMARY KEY, base_url text NOT NULL, objects text[] NOT NULL);
CREATE TABLE user_caps (tenant text NOT NULL REFERENCES tenants, user_name text NOT NULL,
                        max_concurrency int NOT NULL CHECK (max_concurrency >= 0),
                        PRIMARY KEY (tenant, user_name));
CREATE TABLE query_log (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now(),
                        tenant text NOT NULL, user_name text NOT NULL, sql_hash text NOT NULL,
                        status int NOT NULL, latency_ms real NOT NULL);
CREATE INDEX query_log_tenant ON query_log (tenant, ts);
CREATE TABLE seq_writes (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now());
"""


def conninfo(port: int, timeout: int = 2) -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout={timeout}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def seed(port: int, api_keys: dict[str, str], connectors: dict[str, tuple[str, list[str]]]) -> None:
    """Create the schema and insert tenants, hashed keys and connector configs."""
    with psycopg.connect(conninfo(port, 10), autocommit=False) as conn:
        conn.execute(SCHEMA)
        for tenant, key in api_keys.items():
            conn.execute("INSERT INTO tenants (name) VALUES (%s)", (tenant,))
            conn.execute("INSERT INTO api_keys (key_hash, tenant) VALUES (%s, %s)",
                         (hash_key(key), tenant))
        for name, (url, objects) in connectors.items():
            conn.execute("INSERT INTO connectors VALUES (%s, %s, %s)", (name, url, objects))


def node_role(port: int) -> str:
    """"primary", "replica" or "down"."""
    try:
        # libpq rounds timeouts up to 2 s; 4 s leaves room for a machine under heavy load.
        with psycopg.connect(conninfo(port, 4), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return "down"
    return "replica" if row and row[0] else "primary"


class LagReading(NamedTuple):
    """The replica's lag as the primary sees it (:func:`replication_lag`)."""

    streaming: bool  # a replica streams from this primary
    seconds: float | None  # replay lag; None once caught up with no WAL activity
    wal_bytes: int  # the primary's WAL position: unchanged = no write since the last look


def replication_lag(primary_port: int) -> LagReading:
    """The replica's replay lag, read on the primary.

    ``pg_stat_replication.replay_lag`` is the time between the primary flushing WAL and the
    standby reporting it replayed: under writes, how long an acknowledged write waits to
    exist on the replica, i.e. what a promotion at that instant would lose. It is NULL once
    the replica has caught up with no WAL activity (nothing at risk), and until then shows
    the last lag measured (so a caller sampling it compares ``wal_bytes``). The replica-side
    ``now() - pg_last_xact_replay_timestamp()`` would instead grow on an idle database.
    Raises :class:`psycopg.Error` when the primary does not answer."""
    with psycopg.connect(conninfo(primary_port, 1), autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT EXTRACT(EPOCH FROM replay_lag)::float8 FROM pg_stat_replication"
            "        LIMIT 1),"
            " (SELECT count(*) FROM pg_stat_replication),"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
    if row is None:
        return LagReading(False, None, 0)
    seconds = None if row[0] is None else float(row[0])
    return LagReading(bool(row[1]), seconds, int(row[2]))


def replay_lag(primary_port: int) -> float | None:
    """Seconds the replica's replay trails the primary (0.0 when caught up; None if unknown)."""
    try:
        reading = replication_lag(primary_port)
    except psycopg.Error:
        return None
    return (reading.seconds or 0.0) if reading.streaming else None


def promote(port: int) -> bool:
    with psycopg.connect(conninfo(port, 2), autocommit=True) as conn:
        row = conn.execute("SELECT pg_promote(true, 30)").fetchone()
    return bool(row and row[0])


def max_sequence(port: int) -> int:
    with psycopg.connect(conninfo(port, 2), autocommit=True) as conn:
        row = conn.execute("SELECT COALESCE(max(seq), 0) FROM seq_writes").fetchone()
    return int(row[0]) if row else 0


def write_sequenced(port: int, n: int) -> dict[str, Any]:
    """n autocommitted inserts; a write counts once its COMMIT returned (acknowledged)."""
    acked, last, error = 0, None, None
    try:
        with psycopg.connect(conninfo(port, 2), autocommit=True) as conn:
            row = conn.execute("SELECT COALESCE(max(seq), 0) FROM seq_writes").fetchone()
            seq = int(row[0]) if row else 0
            for _ in range(n):
                conn.execute("INSERT INTO seq_writes (seq) VALUES (%s)", (seq + 1,))
                seq += 1
                acked, last = acked + 1, seq
    except psycopg.Error as exc:
        error = type(exc).__name__  # the class, not the text: no connection strings in answers
    return {"requested": n, "acknowledged": acked, "last_acknowledged": last, "error": error}
