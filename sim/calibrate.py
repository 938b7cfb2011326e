"""``python -m sim calibrate --from-sandbox DIR``: fit what the stand-in measures.

The stand-in's services export one Prometheus latency histogram each
(``omnisql_request_latency_seconds``, ``sandbox/metrics.py``), merged on the admin's
``/metrics``: per provider mock (``mock.<name>``), per zone's connector (by provider) and
engine, and the gateway. This reads them and fits a lognormal (the schema's
``{dist: lognormal, median, p99}``) by maximum likelihood on the binned counts. The fit
is reported with its quantiles beside the histogram's (linear within a bucket, as
PromQL's ``histogram_quantile``) and a Kolmogorov-Smirnov distance, the largest CDF gap
at the bucket edges (a lower bound of the true one: buckets hide what lies between edges).

Only what maps onto one model parameter, and is resolved by the buckets (at least two
edges inside the data: a lognormal has two parameters), is written to the overlay: the
provider mocks' latency (``topology.providers.<name>.latency``), and the two parts of an
engine slot's time per query (``omnisql_engine_work_seconds``, by ``part``): the engine's
own work before the cache lookup (``topology.engine.service_time``) and the lookup
itself (``topology.cache.latency``), the two the simulator's engine worker is held for.
Each is pooled over the zones (the scenario has one of each); the zones' own are
reported beside it. The engine's request histogram times the whole request (on a miss,
the connector fetch too), and the connector's the whole fetch (provider call, token,
queueing), so neither is a service time: they are reported, listed under ``not_fitted``.
The overlay is a YAML file ``{overrides: {dotted.path: value}, fit: [...], not_fitted:
[...]}``; ``python -m sim run|conform --calibration FILE``
applies its ``overrides`` after the profile, as ``--set`` would (``--set`` still wins).
The metadata replica's lag, the RPO of a primary loss, is fitted from the stand-in's raw
lag samples beside these histograms (:mod:`sim.calibrate_lag`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from labcore.scenario import Scenario

__all__ = ["Fit", "Histogram", "calibration_mismatches", "calibration_overrides",
           "engine_overlay", "fit_lognormal", "fitted_on", "histogram_quantile",
           "informative_edges", "overlay", "pooled", "read_histograms", "run_command"]

FAMILY = "omnisql_request_latency_seconds"
#: The engine slot's time by part, and the parameter each part is in the simulator.
WORK_FAMILY = "omnisql_engine_work_seconds"
WORK_TARGETS = {"service": "topology.engine.service_time",
                "cache_lookup": "topology.cache.latency"}
QUANTILES = (0.5, 0.9, 0.95, 0.99)
#: Histograms with fewer observations are reported, not fitted.
MIN_COUNT = 50


@dataclass(frozen=True)
class Histogram:
    """One service's cumulative latency histogram: finite bucket edges, counts ``<= edge``.
    ``connector`` is the series' second label: the connector of a request latency, the
    part of an engine's work."""

    scope: str
    connector: str
    edges: tuple[float, ...]
    cumulative: tuple[float, ...]
    count: float

    @property
    def name(self) -> str:
        return f"{self.scope}/{self.connector}" if self.connector else self.scope


def read_histograms(text: str, family_name: str = FAMILY,
                    label: str = "connector") -> list[Histogram]:
    """Every series of histogram ``family_name`` (by ``scope`` and ``label``) in a
    Prometheus exposition, summed over ``instance`` (the merge labels each service's
    series with it)."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[tuple[str, str], dict[float, float]] = {}
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != family_name:
            continue
        for sample in family.samples:
            key = (sample.labels.get("scope", ""), sample.labels.get(label, ""))
            if sample.name.endswith("_bucket") and sample.labels.get("le") != "+Inf":
                edge = float(sample.labels["le"])
                slot = buckets.setdefault(key, {})
                slot[edge] = slot.get(edge, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                counts[key] = counts.get(key, 0.0) + sample.value
    return [Histogram(scope, conn, tuple(sorted(b)), tuple(b[e] for e in sorted(b)),
                      counts.get((scope, conn), 0.0))
            for (scope, conn), b in sorted(buckets.items())]


def histogram_quantile(h: Histogram, q: float) -> float | None:
    """The q-quantile, linear within its bucket (PromQL's rule); None above the last edge."""
    rank = q * h.count
    lower_edge, lower_count = 0.0, 0.0
    for edge, cum in zip(h.edges, h.cumulative):
        if cum >= rank and cum > lower_count:
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (cum - lower_count)
        lower_edge, lower_count = edge, cum
    return None


@dataclass(frozen=True)
class Fit:
    """A lognormal fitted to one histogram, and how well it fits."""

    median: float
    sigma: float
    ks: float

    @property
    def p99(self) -> float:
        from scipy.stats import norm

        return self.median * math.exp(self.sigma * float(norm.ppf(0.99)))

    def quantile(self, q: float) -> float:
        from scipy.stats import norm

        return self.median * math.exp(self.sigma * float(norm.ppf(q)))


def _lognormal_cdf(edges: np.ndarray, median: float, sigma: float) -> np.ndarray:
    from scipy.stats import norm

    return np.asarray(norm.cdf(np.log(edges / median) / sigma))


def informative_edges(h: Histogram) -> int:
    """Bucket edges the histogram's CDF is strictly inside (1%, 99%) at: each pins one
    quantile. A two-parameter fit needs two, or it is not determined by the data."""
    cdf = np.asarray(h.cumulative) / max(h.count, 1.0)
    return int(np.sum((cdf > 0.01) & (cdf < 0.99)))


def fit_lognormal(h: Histogram) -> Fit:
    """Maximum likelihood on the binned counts (each observation known only to lie in its
    bucket; the last bucket open above); KS: the largest CDF gap at the edges."""
    from scipy.optimize import minimize

    edges = np.asarray(h.edges)
    cum = np.asarray(h.cumulative)
    counts = np.diff(np.concatenate([[0.0], cum, [h.count]]))
    start = histogram_quantile(h, 0.5) or float(edges[-1])

    def nll(x: np.ndarray) -> float:
        cdf = _lognormal_cdf(edges, math.exp(x[0]), math.exp(x[1]))
        p = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
        return float(-np.sum(counts * np.log(np.maximum(p, 1e-300))))

    best = minimize(nll, np.array([math.log(max(start, 1e-6)), math.log(0.5)]),
                    method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
    median, sigma = math.exp(best.x[0]), math.exp(best.x[1])
    ks = float(np.max(np.abs(_lognormal_cdf(edges, median, sigma) - cum / h.count)))
    return Fit(median, sigma, ks)


def _duration(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}us"


def _report(h: Histogram, fit: Fit | None) -> dict[str, Any]:
    quantiles = {f"p{round(q * 100):d}": {
        "measured": histogram_quantile(h, q),
        "fitted": None if fit is None else fit.quantile(q)} for q in QUANTILES}
    out: dict[str, Any] = {"series": h.name, "observations": h.count,
                           "informative_edges": informative_edges(h), "quantiles": quantiles}
    if fit is not None:
        out.update(median=fit.median, p99=fit.p99, sigma=fit.sigma, ks=fit.ks)
    return out


def _why_not(h: Histogram) -> str:
    if h.count < MIN_COUNT:
        return f"{h.count:.0f} observations (fewer than {MIN_COUNT}): run a load first"
    if h.scope.startswith("mock."):
        return (f"{informative_edges(h)} bucket edge(s) inside the data: the buckets of "
                "sandbox/metrics.py cannot resolve this latency (a lognormal needs 2)")
    if h.scope.endswith(".engine"):
        return ("times the whole request (on a miss, the connector fetch too): the engine's "
                "service time and cache lookup are fitted from its work histogram")
    if h.scope.endswith(".connector"):
        return ("times the whole fetch (provider call, token, queueing): the simulator's "
                "connector adds the provider's latency itself; fitted at the provider")
    return "the gateway's end-to-end latency: a result to compare, not a parameter"


def overlay(histograms: Sequence[Histogram], source: str) -> dict[str, Any]:
    """The calibration file's content (see the module docstring)."""
    overrides: dict[str, Any] = {}
    fits, not_fitted = [], []
    for h in histograms:
        provider = h.scope.startswith("mock.") and h.connector == h.scope[len("mock."):]
        if provider and h.count >= MIN_COUNT and informative_edges(h) >= 2:
            fit = fit_lognormal(h)
            path = f"topology.providers.{h.connector}.latency"
            overrides[path] = {"dist": "lognormal", "median": _duration(fit.median),
                               "p99": _duration(fit.p99)}
            fits.append({**_report(h, fit), "target": path})
        else:
            not_fitted.append({**_report(h, None), "reason": _why_not(h)})
    return {"source": source, "overrides": overrides, "fit": fits, "not_fitted": not_fitted}


def pooled(histograms: Sequence[Histogram], scope: str, connector: str) -> Histogram | None:
    """The sum of ``histograms`` (same bucket edges), named ``scope/connector``."""
    if not histograms or len({h.edges for h in histograms}) != 1:
        return None
    cumulative = tuple(float(sum(c)) for c in zip(*(h.cumulative for h in histograms)))
    return Histogram(scope, connector, histograms[0].edges, cumulative,
                     float(sum(h.count for h in histograms)))


def engine_overlay(work: Sequence[Histogram],
                   ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Overrides, fits and unfitted series from the engines' work histograms: for each part,
    the zones pooled into one fit when the buckets resolve it; each zone's is reported."""
    overrides: dict[str, Any] = {}
    fits: list[dict[str, Any]] = []
    not_fitted: list[dict[str, Any]] = []
    for part, path in WORK_TARGETS.items():
        zones = [h for h in work if h.connector == part and h.scope.endswith(".engine")]
        h = pooled(zones, "engine", part)
        if h is None:
            continue
        if h.count >= MIN_COUNT and informative_edges(h) >= 2:
            fit = fit_lognormal(h)
            overrides[path] = {"dist": "lognormal", "median": _duration(fit.median),
                               "p99": _duration(fit.p99)}
            fits.append({**_report(h, fit), "target": path})
        else:
            why = (f"{h.count:.0f} observations (fewer than {MIN_COUNT}): run a load first"
                   if h.count < MIN_COUNT else
                   f"{informative_edges(h)} bucket edge(s) inside the data: not resolved")
            not_fitted.append({**_report(h, None), "reason": why})
        not_fitted += [{**_report(z, None), "reason": "one zone's: the zones are pooled "
                        "into one fit (the scenario has one engine service time and one "
                        "cache latency)"} for z in zones]
    return overrides, fits, not_fitted


def calibration_overrides(path: Path, scenario: Mapping[str, Any] | None = None,
                          skip: Collection[str] = ()) -> list[str]:
    """A calibration file's overrides as ``--set`` items (``PATH=VALUE``). With the
    ``scenario``'s data, an override of a top-level section it lacks is left out: a
    calibration describes the stand-in's parts, it does not add a ``failover:`` to a
    scenario without one (the lag fit is written to both parameters that draw an RPO)."""
    overrides = _read_calibration(path)["overrides"]
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()
            if (scenario is None or str(key).split(".")[0] in scenario) and key not in skip]


def _read_calibration(path: Path) -> Mapping[str, Any]:
    """The calibration file's mapping, with its ``overrides`` mapping; ScenarioError (exit 2)
    when it cannot be read or has none."""
    import yaml

    from labcore.scenario_file import ScenarioError

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(str(path), f"cannot read the calibration file: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("overrides"), Mapping):
        raise ScenarioError(str(path), "a calibration file needs an 'overrides' mapping "
                            "(python -m sim calibrate --from-sandbox DIR writes one)")
    return data


def fitted_on(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """For each fitted provider latency, the distribution the stand-in's mock was configured
    with (``config``: its ``GET /admin/config``): the fit describes the mock plus the
    stand-in's own overhead at that configuration, not at another one."""
    providers = config.get("providers") or {}
    out = {}
    for key in overrides:
        parts = str(key).split(".")
        if parts[:2] == ["topology", "providers"] and parts[3:] == ["latency"]:
            configured = (providers.get(parts[2]) or {}).get("latency")
            if configured:
                out[str(key)] = configured
    return out


def calibration_mismatches(path: Path, scenario: Scenario) -> dict[str, str]:
    """``{override: reason}`` for every calibrated provider latency fitted on a stand-in
    configured otherwise than ``scenario`` (at its profile) configures that provider: such a
    fit would replace the scenario's own latency (a 3 s API) with another scenario's."""
    from labcore.scenario_file import ScenarioError

    recorded = _read_calibration(path).get("fitted_on") or {}
    if not isinstance(recorded, Mapping):
        raise ScenarioError(str(path), "'fitted_on' must map provider latencies to the "
                            "distributions they were fitted with")
    out = {}
    for key, configured in recorded.items():
        parts = str(key).split(".")
        spec = scenario.topology.providers.get(parts[2]) if len(parts) == 4 else None
        if spec is None:
            continue
        own = spec.latency.model_dump(by_alias=True)
        if own != configured:
            out[str(key)] = (f"fitted on a stand-in whose {parts[2]} latency was {configured}; "
                             f"the scenario's is {own}")
    return out


def run_command(args: Any, console: Any) -> int:
    """Read the stand-in's histograms and replica lag samples, fit, print, write the
    overlay; 0, or 1 if nothing could be fitted (the reasons are printed)."""
    import yaml

    from .calibrate_io import fetch_config, fetch_lag, fetch_metrics, fit_table
    from .calibrate_lag import lag_overlay

    exposition = fetch_metrics(args.from_sandbox)
    result = overlay(read_histograms(exposition), str(args.from_sandbox))
    for overrides, fits, not_fitted in (
            engine_overlay(read_histograms(exposition, WORK_FAMILY, "part")),
            lag_overlay(fetch_lag(args.from_sandbox))):
        result["overrides"].update(overrides)
        result["fit"] += fits
        result["not_fitted"] += not_fitted
    result["fitted_on"] = fitted_on(fetch_config(args.from_sandbox), result["overrides"])
    from .humanize import make_console

    make_console().print(fit_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(result, sort_keys=False))
    if not result["overrides"]:
        console.print(f"{args.out}: nothing could be fitted (the reasons are listed above)",
                      highlight=False)
        return 1
    console.print(f"{args.out}: {len(result['overrides'])} parameter(s); use it with "
                  f"--calibration {args.out}", highlight=False)
    return 0
