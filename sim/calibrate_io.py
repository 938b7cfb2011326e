"""The I/O of ``python -m sim calibrate``: the command line, the stand-in's ``/metrics``
and replica lag samples, and the printed fit (the fitting itself is :mod:`sim.calibrate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CalibrationError", "add_parser", "fetch_config", "fetch_lag", "fetch_metrics",
           "fit_table"]


class CalibrationError(Exception):
    """No stand-in to read, or it did not answer: bad input (exit 2)."""


def add_parser(sub: Any) -> None:
    calibrate = sub.add_parser("calibrate", help="fit the stand-in's measured latencies and "
                               "replica lag into a profile overlay (--calibration FILE)")
    calibrate.add_argument("--from-sandbox", type=Path, required=True, metavar="DIR",
                           help="a running stand-in's directory (state.json)")
    calibrate.add_argument("--out", type=Path, default=Path("runs") / "calibration.yaml",
                           help="the overlay to write (default runs/calibration.yaml)")


def fetch_metrics(directory: Path) -> str:
    """The admin's merged ``/metrics`` of the stand-in in ``directory`` (loopback only)."""
    text = _admin_get(directory, "/metrics")
    if text is None:
        raise CalibrationError(f"{directory}: the stand-in has no /metrics")
    return text


def fetch_config(directory: Path) -> dict[str, Any]:
    """The stand-in's effective configuration (``GET /admin/config``); empty when it
    serves none."""
    import json

    text = _admin_get(directory, "/admin/config")
    try:
        data = None if text is None else json.loads(text)
    except ValueError:
        raise CalibrationError(f"{directory}: /admin/config is not JSON") from None
    return data if isinstance(data, dict) else {}


def fetch_lag(directory: Path) -> dict[str, Any] | None:
    """The stand-in's replica lag samples (``GET /admin/metadata/lag``); None when it
    serves none (a stand-in from before the samples existed answers 404)."""
    import json

    text = _admin_get(directory, "/admin/metadata/lag")
    try:
        data = None if text is None else json.loads(text)
    except ValueError:
        raise CalibrationError(f"{directory}: /admin/metadata/lag is not JSON") from None
    return data if isinstance(data, dict) else None


def _admin_get(directory: Path, path: str) -> str | None:
    """GET ``path`` on the admin of the stand-in in ``directory``: the body, None on 404."""
    import urllib.error
    import urllib.request

    from labcore.sandbox_client import SandboxError, allowed_hosts, check_url, read_state

    try:
        state = read_state(directory)
        if state is None:
            raise CalibrationError(f"{directory}: no running stand-in (python -m sandbox up "
                                   f"--detach --dir {directory})")
        url = check_url(str(state.get("admin_url") or ""), allowed_hosts())
    except SandboxError as exc:
        raise CalibrationError(str(exc)) from None
    token = state.get("admin_token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=10.0) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise CalibrationError(f"{directory}: the stand-in's {path} answered {exc.code}"
                               ) from None
    except (OSError, urllib.error.URLError) as exc:
        raise CalibrationError(f"{directory}: the stand-in's {path} did not answer "
                               f"({type(exc).__name__})") from None


def _ms(value: float | None) -> str:
    from .humanize import human_duration

    return "—" if value is None else human_duration(value)


def fit_table(result: dict[str, Any]) -> Any:
    """Quantiles measured and fitted side by side, the KS distance, or why not fitted."""
    from rich.table import Table

    table = Table(title=f"calibration from {result['source']}", expand=True)
    for column in ("series", "n", "P50", "P90", "P95", "P99", "KS", "written"):
        table.add_column(column, overflow="fold")
    reasons = sorted({row["reason"] for row in result["not_fitted"]})
    for row in result["fit"] + result["not_fitted"]:
        cells = []
        for q in ("p50", "p90", "p95", "p99"):
            pair = row["quantiles"][q]
            fitted = "" if pair["fitted"] is None else f" / {_ms(pair['fitted'])}"
            cells.append(_ms(pair["measured"]) + fitted)
        ks = f"{row['ks']:.3f}" if "ks" in row else "—"
        written = "yes" if "target" in row else f"no ({reasons.index(row['reason']) + 1})"
        table.add_row(row["series"], f"{row['observations']:.0f}", *cells, ks, written)
    table.caption = "\n".join(
        ["quantiles: measured / fitted lognormal; KS: largest CDF gap at the bucket edges "
         "for histograms, of the raw samples for the lag"]
        + [f"({i}) {why}" for i, why in enumerate(reasons, start=1)])
    return table
