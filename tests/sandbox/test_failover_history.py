"""A Jepsen-style check of the metadata failover (issue 16, item 8), on a sandbox of its own.

Each trial: several concurrent writers append (writer, seq) rows to the primary, each row
acknowledged when its autocommitted INSERT returns; at a random moment the primary is killed
(PostgreSQL immediate shutdown, as in a crash) and the replica promoted; then the full
history on the new primary is checked against every acknowledged write:
- lost: acknowledged, absent (the asynchronous replica's RPO, expected and counted);
- duplicated: a (writer, seq) present twice (must never happen);
- reordered: within a writer, rows whose insertion order differs from their seq order, or a
  write present while an earlier acknowledged write of the same writer is absent (a gap:
  the replica would have applied WAL out of order; must never happen);
- phantom: present but never attempted (must never happen); in doubt: present, not
  acknowledged (the crash ate the acknowledgement; allowed).
The replica is then rebuilt from the new primary and the next trial starts. Counts are
printed and attached to the test report (`record_property`).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sandbox.testing import detached_sandbox, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(420)]

TRIALS = 3
WRITERS = 4


@dataclass
class History:
    attempted: set[tuple[int, int]] = field(default_factory=set)
    acknowledged: set[tuple[int, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Box:
    def __init__(self, root: Path) -> None:
        self.state: dict[str, Any] = json.loads((root / "state.json").read_text())
        self.http = httpx.Client(timeout=90.0, headers={
            "Authorization": f"Bearer {self.state['admin_token']}"})

    def admin(self, method: str, path: str) -> dict[str, Any]:
        resp = self.http.request(method, self.state["admin_url"] + path)
        assert resp.status_code == 200, (path, resp.text)
        data: dict[str, Any] = resp.json()
        return data

    def connect(self, port: int) -> psycopg.Connection[Any]:
        return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                               password=self.state["internal"]["pg_password"], autocommit=True,
                               connect_timeout=3)


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    with detached_sandbox("omnisql-jepsen-") as root:
        sb = Box(root)
        yield sb
        sb.http.close()




def _writer(box: Box, port: int, writer: int, history: History, stop: threading.Event) -> None:
    try:
        conn = box.connect(port)
    except psycopg.Error:
        return
    with conn:
        for seq in range(1_000_000):
            if stop.is_set():
                return
            with history.lock:
                history.attempted.add((writer, seq))
            try:
                conn.execute("INSERT INTO jepsen_history (writer, seq) VALUES (%s, %s)",
                             (writer, seq))
            except psycopg.Error:
                return  # the primary died: this write is in doubt, the writer is done
            with history.lock:
                history.acknowledged.add((writer, seq))


def check(rows: list[tuple[int, int]], history: History) -> dict[str, int]:
    """Anomalies of the history read back (rows in insertion order) against the acks."""
    present = Counter(rows)
    seen = set(present)
    by_writer: dict[int, list[int]] = {}
    for writer, seq in rows:
        by_writer.setdefault(writer, []).append(seq)
    out_of_order = sum(1 for seqs in by_writer.values()
                       for a, b in zip(seqs, seqs[1:]) if b <= a)
    gaps = sum(1 for (w, s) in history.acknowledged if (w, s) not in seen
               and any(x > s for x in by_writer.get(w, [])))
    return {"acknowledged": len(history.acknowledged), "present": len(seen),
            "lost": len(history.acknowledged - seen),
            "duplicated": sum(n - 1 for n in present.values() if n > 1),
            "reordered": out_of_order + gaps,
            "phantom": len(seen - history.attempted),
            "in_doubt": len(seen - history.acknowledged)}


def _streaming(box: Box) -> bool:
    return box.admin("GET", "/admin/metadata/status")["replica_lag_seconds"] is not None


def trial(box: Box, rng: random.Random) -> dict[str, int]:
    assert wait_for(lambda: _streaming(box), 60.0)
    port = box.admin("GET", "/admin/metadata/status")["primary"]["port"]
    with box.connect(port) as conn:
        conn.execute("DROP TABLE IF EXISTS jepsen_history")
        conn.execute("CREATE TABLE jepsen_history (id bigserial PRIMARY KEY, writer int, "
                     "seq int)")
    assert wait_for(lambda: _streaming(box), 60.0)
    history, stop = History(), threading.Event()
    threads = [threading.Thread(target=_writer, args=(box, port, w, history, stop))
               for w in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.5, 2.0))  # kill at a random moment of the write stream
    box.admin("POST", "/faults/metadata/primary/kill")
    stop.set()
    for t in threads:
        t.join(timeout=30)
    promoted = box.admin("POST", "/admin/metadata/promote")
    with box.connect(promoted["primary"]["port"]) as conn:
        rows = conn.execute("SELECT writer, seq FROM jepsen_history ORDER BY id").fetchall()
    box.admin("POST", "/admin/metadata/rebuild")  # a streaming replica for the next trial
    return check([(int(w), int(s)) for w, s in rows], history)


def test_failover_history_has_no_duplicates_no_reordering(
        box: Box, record_property: Callable[[str, object], None]) -> None:
    results = [trial(box, random.Random(f"jepsen-trial-{i}")) for i in range(TRIALS)]
    totals = {k: sum(r[k] for r in results) for k in results[0]}
    print(f"metadata failover, {TRIALS} trials x {WRITERS} writers: {results}; total {totals}")
    record_property("failover_history", json.dumps({"trials": results, "total": totals}))
    for r in results:
        assert r["acknowledged"] > 0, "no write was acknowledged before the kill"
        assert r["duplicated"] == 0 and r["reordered"] == 0 and r["phantom"] == 0, r
        assert r["lost"] <= r["acknowledged"]
        assert r["in_doubt"] <= WRITERS  # at most one unacknowledged commit per writer


def test_the_checker_sees_each_anomaly() -> None:
    """The check is able to fail: each anomaly, planted in a history, is counted."""
    history = History(attempted={(0, 0), (0, 1), (0, 2), (1, 0)},
                      acknowledged={(0, 0), (0, 1), (0, 2), (1, 0)})
    assert check([(0, 0), (0, 1), (0, 2), (1, 0)], history)["lost"] == 0
    assert check([(0, 0), (0, 1), (1, 0)], history)["lost"] == 1
    assert check([(0, 0), (0, 0), (0, 1), (0, 2), (1, 0)], history)["duplicated"] == 1
    assert check([(0, 1), (0, 0), (0, 2), (1, 0)], history)["reordered"] == 1
    assert check([(0, 0), (0, 2), (1, 0)], history)["reordered"] == 1  # a gap
    assert check([(0, 0), (0, 1), (0, 2), (1, 0), (5, 5)], history)["phantom"] == 1
