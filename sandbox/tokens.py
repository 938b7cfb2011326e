"""The OAuth token store (Redis) and the client-credentials refresh both sides use.

Connectors read tokens from here; the admin API's bulk refresh (SOP-103) writes them. Token
values never leave this module in logs or errors.
"""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from sandbox.errors import ApiError

__all__ = ["fetch_token", "load_token", "refresh_token", "token_key"]

# Keep a margin so a token is replaced before the provider starts refusing it.
EXPIRY_MARGIN = 60


def token_key(provider: str, tenant: str) -> str:
    return f"omnisql:token:{provider}:{tenant}"


async def load_token(store: aioredis.Redis, provider: str, tenant: str) -> str | None:
    value = await store.get(token_key(provider, tenant))
    return value.decode() if isinstance(value, bytes) else value


async def refresh_token(
    store: aioredis.Redis, http: httpx.AsyncClient, base_url: str,
    provider: str, tenant: str, secret: str,
) -> str:
    """Get a new token from the provider's token endpoint and store it with its lifetime."""
    token, ttl = await fetch_token(http, base_url, provider, tenant, secret)
    await store.set(token_key(provider, tenant), token, ex=ttl)
    return token


async def fetch_token(http: httpx.AsyncClient, base_url: str, provider: str, tenant: str,
                      secret: str) -> tuple[str, int]:
    """A new token from the provider's token endpoint and its usable lifetime in seconds."""
    try:
        resp = await http.post(f"{base_url}/oauth/token", json={
            "grant_type": "client_credentials", "client_id": tenant, "client_secret": secret,
        })
    except httpx.HTTPError:
        raise ApiError(502, "PROVIDER_ERROR", f"{provider} token endpoint unreachable") from None
    if resp.status_code != 200:
        code = "PROVIDER_UNAUTHORIZED" if resp.status_code == 401 else "PROVIDER_ERROR"
        raise ApiError(502, code, f"{provider} token endpoint answered {resp.status_code}")
    body = resp.json()
    token = str(body["access_token"])
    ttl = max(1, int(body.get("expires_in", 3600)) - EXPIRY_MARGIN)
    return token, ttl
