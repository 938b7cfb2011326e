"""The OAuth token store (Redis) and the client-credentials refresh both sides use.

Connectors read tokens from here; the admin API's bulk refresh (SOP-103) writes them. Token
values never leave this module in logs or errors.

Redis holds tokens sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under
`internal.token_key`, a key generated at `up` that lives only in the services' 0600 config,
never in Redis: a value copied out of Redis (a dump, a `MONITOR`, a stolen password) is not a
token any provider accepts. A value that fails to open (wrong key, tampered) reads as absent,
so the caller fetches a fresh token instead of sending garbage to the provider.
"""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis
from cryptography.fernet import Fernet, InvalidToken

from sandbox.errors import ApiError

__all__ = ["TokenCipher", "fetch_token", "load_token", "new_token_key", "refresh_token",
           "store_token", "token_key"]

# Keep a margin so a token is replaced before the provider starts refusing it.
EXPIRY_MARGIN = 60


def new_token_key() -> str:
    """A fresh encryption key for the token store (urlsafe base64, as Fernet wants it)."""
    return Fernet.generate_key().decode()


class TokenCipher:
    """Seals tokens before they go to Redis and opens them when they come back."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, token: str) -> bytes:
        return self._fernet.encrypt(token.encode())

    def open(self, sealed: bytes | str) -> str | None:
        """The token, or None if the value was not sealed with this key or was altered."""
        raw = sealed.encode() if isinstance(sealed, str) else sealed
        try:
            return self._fernet.decrypt(raw).decode()
        except (InvalidToken, UnicodeDecodeError):
            return None


def token_key(provider: str, tenant: str) -> str:
    return f"omnisql:token:{provider}:{tenant}"


async def load_token(store: aioredis.Redis, cipher: TokenCipher, provider: str,
                     tenant: str) -> str | None:
    value = await store.get(token_key(provider, tenant))
    return None if value is None else cipher.open(value)


async def store_token(store: aioredis.Redis, cipher: TokenCipher, provider: str, tenant: str,
                      token: str, ttl: int) -> None:
    await store.set(token_key(provider, tenant), cipher.seal(token), ex=ttl)


async def refresh_token(
    store: aioredis.Redis, cipher: TokenCipher, http: httpx.AsyncClient, base_url: str,
    provider: str, tenant: str, secret: str,
) -> str:
    """Get a new token from the provider's token endpoint and store it, sealed, with its
    lifetime."""
    token, ttl = await fetch_token(http, base_url, provider, tenant, secret)
    await store_token(store, cipher, provider, tenant, token, ttl)
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
