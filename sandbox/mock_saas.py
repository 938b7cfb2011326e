"""A mock SaaS provider (CRM, ticketing): OAuth tokens, paginated records, rate limits, faults.

Behaviour a real connector must survive: per-tenant and app-wide token buckets answering
429 with Retry-After, tokens that expire or get revoked (401), outages (503 and a status page
that says so), latency drawn from a distribution and a background error rate (configured
from the scenario, `sandbox.provider_config`), and injected faults on top. The
`/_control/*` endpoints are the fault API's and the configuration's levers.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.catalog import CATALOG, ObjectSpec, make_row
from sandbox.errors import ApiError
from sandbox.metrics import LATENCY, PROVIDER_REQUESTS, REQUESTS, metrics_endpoint
from sandbox.provider_config import ProviderSettings, parse_provider_section
from sandbox.service import EXCEPTION_HANDLERS, handle_errors, health, read_json
from sandbox.standin import default_config

__all__ = ["Provider", "ProviderFaults", "build_app"]

TOKEN_TTL = 3600.0
MAX_PAGE = 200


@dataclass
class ProviderFaults:
    """Injected faults; the defaults mean none."""

    latency_ms: float = 0.0
    rate_limit_per_s: float | None = None
    outage: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "rate_limit_per_s": self.rate_limit_per_s,
                "outage": self.outage}


@dataclass
class Provider:
    """One provider's running state: clients, live tokens, buckets, faults."""

    name: str
    clients: dict[str, str]  # tenant -> client secret
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> tenant, expiry
    faults: ProviderFaults = field(default_factory=ProviderFaults)
    section: dict[str, Any] | None = None  # this provider's `sandbox.standin` section
    settings: ProviderSettings = field(init=False)

    def __post_init__(self) -> None:
        self.configure(self.section or default_config()["providers"][self.name])

    def configure(self, section: Any) -> dict[str, Any]:
        """A new configuration (400 on a bad one): fresh buckets and streams."""
        self.settings = ProviderSettings(self.name, parse_provider_section(section))
        return self.settings.section

    @property
    def scope(self) -> str:
        return f"mock.{self.name}"

    def issue(self, tenant: str, secret: str) -> str:
        if not secrets.compare_digest(self.clients.get(tenant, ""), secret) or not secret:
            raise ApiError(401, "INVALID_CLIENT", "unknown client or bad secret")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (tenant, time.time() + TOKEN_TTL)
        return token

    def authenticate(self, header: str) -> str:
        token = header[7:] if header.startswith("Bearer ") else ""
        entry = self.tokens.get(token)
        if entry is None or entry[1] < time.time():
            raise ApiError(401, "INVALID_TOKEN", "access token expired or revoked")
        return entry[0]

    def revoke(self, fraction: float) -> int:
        # Sorted, so which tokens go is deterministic for a given token set.
        victims = sorted(self.tokens)[: math.ceil(len(self.tokens) * fraction)]
        for token in victims:
            del self.tokens[token]
        return len(victims)

    def set_faults(self, faults: ProviderFaults) -> None:
        self.faults = faults
        self.settings.tenant_buckets.clear()  # new limits apply to fresh buckets


def _matches(row: dict[str, Any], filters: dict[str, str]) -> bool:
    return all(str(row[k]) == v for k, v in filters.items())


def _page(spec: ObjectSpec, tenant: str, filters: dict[str, str], start: int, size: int
          ) -> tuple[list[dict[str, Any]], int | None]:
    if set(filters) == {"id"}:  # the common point lookup needs no scan
        i = int(filters["id"]) if filters["id"].lstrip("-").isdigit() else 0
        rows = [make_row(spec, tenant, i)] if 1 <= i <= spec.count and start == 0 else []
        return rows, None
    out: list[dict[str, Any]] = []
    i = start
    while i < spec.count and len(out) < size:
        row = make_row(spec, tenant, i + 1)
        i += 1
        if _matches(row, filters):
            out.append(row)
    return out, (i if i < spec.count else None)


def _query_args(request: Request, spec: ObjectSpec) -> tuple[dict[str, str], int, int]:
    params = dict(request.query_params)
    try:
        start = int(params.pop("cursor", "0") or 0)
        size = min(MAX_PAGE, max(1, int(params.pop("page_size", "100"))))
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", "cursor and page_size must be integers") from None
    unknown = set(params) - set(spec.columns)
    if unknown:
        raise ApiError(400, "BAD_REQUEST", f"unknown filter fields {sorted(unknown)}")
    return params, start, size


def build_app(provider: Provider) -> Starlette:
    """The provider's HTTP app."""

    @handle_errors
    async def token(request: Request) -> Response:
        body = await read_json(request)
        if body.get("grant_type") != "client_credentials":
            raise ApiError(400, "UNSUPPORTED_GRANT", "grant_type must be client_credentials")
        tok = provider.issue(str(body.get("client_id", "")), str(body.get("client_secret", "")))
        return JSONResponse({"access_token": tok, "token_type": "bearer", "expires_in": TOKEN_TTL})

    async def records(request: Request) -> Response:
        started, seen = time.perf_counter(), {"tenant": ""}
        response = await _records(request, seen)
        status = str(response.status_code)
        PROVIDER_REQUESTS.labels(provider.scope, provider.name, status).inc()
        # Per tenant, so the provider's own view shows who floods it (SOP-101).
        REQUESTS.labels(provider.scope, status, seen["tenant"], provider.name).inc()
        LATENCY.labels(provider.scope, provider.name).observe(time.perf_counter() - started)
        return response

    @handle_errors
    async def _records(request: Request, seen: dict[str, str]) -> Response:
        extra, settings = provider.faults.latency_ms / 1000.0, provider.settings
        try:
            _admit(provider, request, seen)
        except ApiError:  # a refusal answers after the (short) reject latency
            await asyncio.sleep(settings.reject() + extra)
            raise
        drawn = settings.latency()
        await asyncio.sleep(drawn + extra)
        if settings.failed():
            raise ApiError(500, "PROVIDER_FAILURE", f"{provider.name} failed (its error rate)")
        spec = CATALOG[provider.name].get(request.path_params["object"])
        if spec is None:
            raise ApiError(404, "NOT_FOUND", "unknown object")
        filters, start, size = _query_args(request, spec)
        rows, nxt = _page(spec, seen["tenant"], filters, start, size)
        # The draw it slept, so a test can tell the distribution from the HTTP overhead.
        return JSONResponse({"records": rows, "next_cursor": nxt},
                            headers={"x-mock-latency": repr(drawn)})

    async def status(request: Request) -> Response:
        return JSONResponse({"status": "outage" if provider.faults.outage else "operational"})

    return Starlette(exception_handlers=EXCEPTION_HANDLERS, routes=[
        Route("/oauth/token", token, methods=["POST"]),
        Route("/v1/{object}", records, methods=["GET"]),
        Route("/status", status), Route("/health", health), Route("/metrics", metrics_endpoint),
        *_control_routes(provider),
    ])


def _admit(provider: Provider, request: Request, seen: dict[str, str]) -> None:
    """Outage, token and rate limits, in that order; raises the refusal."""
    if provider.faults.outage:
        raise ApiError(503, "OUTAGE", f"{provider.name} is having an outage")
    tenant = provider.authenticate(request.headers.get("authorization", ""))
    seen["tenant"] = tenant
    wait = provider.settings.admit(tenant, provider.faults.rate_limit_per_s)
    if wait > 0:
        raise ApiError(429, "RATE_LIMITED", "rate limit exceeded", retry_after=wait)


def _control_routes(provider: Provider) -> list[Route]:
    """The levers the fault API pulls (guarded by the internal token, see `sandbox.serve`)."""

    @handle_errors
    async def set_faults(request: Request) -> Response:
        if request.method == "DELETE":
            provider.set_faults(ProviderFaults())
        else:
            provider.set_faults(parse_faults(await read_json(request)))
        return JSONResponse(provider.faults.to_json())

    @handle_errors
    async def revoke(request: Request) -> Response:
        body = await read_json(request)
        return JSONResponse({"revoked": provider.revoke(parse_fraction(body))})

    @handle_errors
    async def config(request: Request) -> Response:
        if request.method == "POST":
            provider.configure(await read_json(request))
        return JSONResponse(provider.settings.section)

    return [
        Route("/_control/faults", set_faults, methods=["POST", "DELETE"]),
        Route("/_control/config", config, methods=["GET", "POST"]),
        Route("/_control/revoke", revoke, methods=["POST"]),
    ]


#: Documented ranges of the provider fault parameters (docs/sandbox.md, "Limits").
LATENCY_MS_RANGE = (0.0, 60_000.0)
RATE_LIMIT_RANGE = (0.01, 100_000.0)


def _number(body: dict[str, Any], key: str, bounds: tuple[float, float],
            default: float | None) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    low, high = bounds
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not low <= value <= high):
        raise ApiError(400, "BAD_REQUEST", f"{key} must be a number in [{low:g}, {high:g}]")
    return float(value)


def parse_faults(body: dict[str, Any]) -> ProviderFaults:
    """Validate a fault body: latency_ms in [0, 60000], rate_limit_per_s in [0.01, 100000],
    outage a boolean."""
    unknown = set(body) - {"latency_ms", "rate_limit_per_s", "outage"}
    if unknown:
        raise ApiError(400, "BAD_REQUEST", f"unknown fields {sorted(unknown)}")
    outage = body.get("outage", False)
    if not isinstance(outage, bool):
        raise ApiError(400, "BAD_REQUEST", "outage must be a boolean")
    rate = _number(body, "rate_limit_per_s", RATE_LIMIT_RANGE, None)
    latency = _number(body, "latency_ms", LATENCY_MS_RANGE, 0.0) or 0.0
    return ProviderFaults(latency_ms=latency, rate_limit_per_s=rate, outage=outage)


def parse_fraction(body: dict[str, Any]) -> float:
    value = body.get("fraction", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ApiError(400, "BAD_REQUEST", "fraction must be a number in [0, 1]")
    return float(value)
