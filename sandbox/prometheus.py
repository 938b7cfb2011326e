"""A real Prometheus over the stand-in: its config, its supervisord program, its readiness.

`python -m sandbox up` runs Debian's `prometheus` under the sandbox's supervisord (group
`observability`) on a free loopback port, scraping every service's own `/metrics` (not
admin's merged page, which would count each series twice) and evaluating the rules of
`observability/rules/`. Its URL is `prometheus_url` in state.json. A short scrape and
evaluation interval (2 s) so that 1-minute rates have data within seconds of traffic.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from sandbox.state import LOOPBACK, free_port
from sandbox.supervise import Program

__all__ = [
    "PrometheusError",
    "RULES_DIR",
    "SCRAPE_INTERVAL",
    "add_to_state",
    "binary",
    "config_path",
    "data_dir",
    "programs",
    "render_config",
    "wait_ready",
]

RULES_DIR = Path(__file__).resolve().parents[1] / "observability" / "rules"
SCRAPE_INTERVAL = "2s"
#: Services not scraped: admin's /metrics merges the others' pages.
_NOT_SCRAPED = frozenset({"admin"})


class PrometheusError(RuntimeError):
    """Prometheus is missing or did not come up."""


def binary() -> str:
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).is_file():
        raise PrometheusError("prometheus is not installed (Debian package `prometheus`; "
                              "scripts/test.sh installs it) - or use --no-prometheus")
    return found


def config_path(root: Path) -> Path:
    return root / "prometheus.yml"


def data_dir(root: Path) -> Path:
    return root / "prometheus"


def add_to_state(state: dict[str, Any]) -> None:
    """Give Prometheus a loopback port: `prometheus_url` in the state file."""
    state["prometheus_url"] = f"http://{LOOPBACK}:{free_port()}"


def _target(name: str, url: str) -> dict[str, Any]:
    # Target labels name the process; the rules read `scope`, which the services set
    # themselves, so they work the same over staging's scrape configs.
    return {"targets": [url.removeprefix("http://")], "labels": {"service": name}}


def render_config(state: dict[str, Any], rules_dir: Path = RULES_DIR) -> str:
    """prometheus.yml: one job over every service of the state, the lab's rule files."""
    services = {n: u for n, u in sorted(state["services"].items()) if n not in _NOT_SCRAPED}
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL,
                   "external_labels": {"env": "sandbox"}},
        "rule_files": [str(p) for p in sorted(rules_dir.glob("*.yml"))],
        "scrape_configs": [{"job_name": "omnisql", "scrape_timeout": "1s",
                            "static_configs": [_target(n, u) for n, u in services.items()]}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def programs(root: Path, state: dict[str, Any]) -> list[Program]:
    """The supervisord program, or none when the state has no `prometheus_url`."""
    url = state.get("prometheus_url")
    if not url:
        return []
    config_path(root).write_text(render_config(state))
    shutil.rmtree(data_dir(root), ignore_errors=True)
    data_dir(root).mkdir()
    command = " ".join([
        binary(), f"--config.file={config_path(root)}",
        f"--storage.tsdb.path={data_dir(root)}", "--storage.tsdb.retention.time=1d",
        f"--web.listen-address={url.removeprefix('http://')}",
        f"--web.console.templates={data_dir(root)}", f"--web.console.libraries={data_dir(root)}",
    ])
    return [Program("prometheus", "observability", command)]


def _ready(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(f"{url}/-/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(state: dict[str, Any], timeout: float = 30.0) -> bool:
    """Wait until Prometheus answers ready with its rule groups loaded; False on timeout."""
    url = state.get("prometheus_url")
    if not url:
        return True
    deadline = time.monotonic() + timeout
    with httpx.Client() as http:
        while time.monotonic() < deadline:
            if _ready(http, url) and http.get(f"{url}/api/v1/rules").json()["data"]["groups"]:
                return True
            time.sleep(0.3)
    return False
