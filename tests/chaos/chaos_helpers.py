"""Helpers for the chaos tests: run an experiment through the wrapper, check restoration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "chaos" / "experiments"


def run_py(*args: str, env: dict[str, str] | None = None,
           timeout: float = 150.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)


@dataclass
class ChaosSandbox:
    root: Path

    @property
    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "state.json").read_text())
        return data

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.state['admin_token']}"}

    def api_keys(self) -> list[str]:
        return [t["api_key"] for t in self.state["tenants"].values()]

    def get(self, path: str) -> Any:
        resp = httpx.get(self.state["admin_url"] + path, timeout=30, headers=self.auth)
        resp.raise_for_status()
        return resp.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = httpx.post(self.state["admin_url"] + path, json=body, timeout=60,
                          headers=self.auth)
        resp.raise_for_status()
        return resp.json()

    def run(self, experiment: Path | str, env: dict[str, str] | None = None,
            timeout: float = 150.0) -> tuple[int, str, dict[str, Any] | None]:
        """Run ``python -m chaosomnisql run EXP --short``: exit code, output, journal. Its
        journal and results go to a temporary directory, removed when the run is read."""
        with tempfile.TemporaryDirectory(prefix="chaos-journal-") as tmp:
            journal = Path(tmp) / "journal.json"
            proc = run_py("-m", "chaosomnisql", "run", str(experiment), "--dir",
                          str(self.root), "--short", "--journal", str(journal),
                          "--results", str(Path(tmp) / "results"), env=env, timeout=timeout)
            data = json.loads(journal.read_text()) if journal.exists() else None
        return proc.returncode, proc.stdout + proc.stderr, data


def restored(sb: ChaosSandbox) -> list[str]:
    """What is still injected or unhealthy (empty: the sandbox is fully restored)."""
    faults = sb.get("/faults")
    problems = [f"{k}: {faults[k]}" for k in ("zones_lost", "providers", "canary",
                                              "metadata_needs_rebuild") if faults.get(k)]
    if faults.get("metadata_primary_killed"):
        problems.append("metadata primary killed")
    if faults.get("region") is not None:
        problems.append(f"region: {faults['region'].get('phase')}")
    zones = sb.get("/v1/stats?window=5")["zones"]
    problems += [f"{z} {h}" for z, h in zones.items() if h != "healthy"]
    return problems
