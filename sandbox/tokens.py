"""The OAuth token store (Redis) and the client-credentials refresh both sides use.

Connectors read tokens from here; the admin API's bulk refresh (SOP-103) writes them. Token
values never leave this module in logs or errors.

A tenant's credential with a provider is one token (``token_key``), or, once a paced bulk
refresh has started for it (``sandbox.admin.token_refresh``), a set of ``n`` tokens, one per
user integration (``set_key``: a hash of ``n`` and the renewed tokens by index). Each call
then uses one of the ``n`` drawn uniformly (the simulator's provider draws each call's 401
against the revoked share, ``sim/model/provider.py``); a token of the set not renewed yet is
the tenant's single token, the one a revocation left invalid. The unpaced refresh drops the
set: one working token again.

Redis holds tokens sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under
`internal.token_key`, a key generated at `up` that lives only in the services' 0600 config,
never in Redis: a value copied out of Redis (a dump, a `MONITOR`, a stolen password) is not a
token any provider accepts. A value that fails to open (wrong key, tampered) reads as absent,
so the caller fetches a fresh token instead of sending garbage to the provider.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis.asyncio as aioredis
from cryptography.fernet import Fernet, InvalidToken

from sandbox.errors import ApiError

__all__ = ["TokenCipher", "fetch_token", "load_credential", "load_token", "new_token_key",
           "open_set", "refresh_token", "set_key", "store_in_set", "store_token", "token_key"]

# Keep a margin so a token is replaced before the provider starts refusing it.
EXPIRY_MARGIN = 60
#: A set outlives none of its tokens: it expires with the earliest stored (``EXPIRE LT``),
#: and a set with none stored yet after a token's longest lifetime (the mock's, one hour).
SET_TTL = 3600


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


def set_key(provider: str, tenant: str) -> str:
    return f"omnisql:tokens:{provider}:{tenant}"


def _open(cipher: TokenCipher, value: bytes | str | None) -> str | None:
    return None if value is None else cipher.open(value)


async def load_token(store: aioredis.Redis, cipher: TokenCipher, provider: str,
                     tenant: str, index: int | None = None) -> str | None:
    """The tenant's single token, or with ``index`` that token of its set (the single
    token while that one is not renewed, or without a set)."""
    if index is None:
        return _open(cipher, await store.get(token_key(provider, tenant)))
    pipe = store.pipeline(transaction=False)
    pipe.get(token_key(provider, tenant))
    pipe.hget(set_key(provider, tenant), str(index))
    single, own = await pipe.execute()
    return _open(cipher, own if own is not None else single)


async def load_credential(store: aioredis.Redis, cipher: TokenCipher, provider: str,
                          tenant: str, draw: Callable[[int], int]
                          ) -> tuple[str | None, int | None]:
    """The token for one call and its index in the tenant's set (``draw(n)`` picks it),
    or the single token and None when the tenant has no set; one round trip without a
    set, two with one."""
    pipe = store.pipeline(transaction=False)
    pipe.get(token_key(provider, tenant))
    pipe.hget(set_key(provider, tenant), "n")
    single, held = await pipe.execute()
    if held is None:
        return _open(cipher, single), None
    index = draw(int(held))
    own = await store.hget(set_key(provider, tenant), str(index))
    return _open(cipher, own if own is not None else single), index


async def open_set(store: aioredis.Redis, provider: str, tenant: str, count: int) -> None:
    """The tenant's credential becomes ``count`` tokens. A set of another size is dropped
    (its tokens fall back to the single one); one of the same size keeps its tokens, each
    valid or revoked as the provider has it, until renewed again."""
    key = set_key(provider, tenant)
    held = await store.hget(key, "n")
    if held is not None and int(held) == count:
        return
    pipe = store.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, "n", str(count))
    pipe.expire(key, SET_TTL)
    await pipe.execute()


async def store_in_set(store: aioredis.Redis, cipher: TokenCipher, provider: str,
                       tenant: str, index: int, count: int, token: str, ttl: int) -> None:
    """A renewed token in the tenant's set of ``count``: the calls that draw ``index`` use
    it now (the size is written again, in case the set expired with an older token)."""
    key = set_key(provider, tenant)
    pipe = store.pipeline(transaction=True)
    pipe.hset(key, mapping={"n": str(count), str(index): cipher.seal(token)})
    pipe.expire(key, ttl, lt=True)
    await pipe.execute()


async def store_token(store: aioredis.Redis, cipher: TokenCipher, provider: str, tenant: str,
                      token: str, ttl: int) -> None:
    await store.set(token_key(provider, tenant), cipher.seal(token), ex=ttl)


async def refresh_token(
    store: aioredis.Redis, cipher: TokenCipher, http: httpx.AsyncClient, base_url: str,
    provider: str, tenant: str, secret: str,
) -> str:
    """Get a new token from the provider's token endpoint and store it, sealed, with its
    lifetime, as the tenant's one credential (a set of tokens is dropped)."""
    token, ttl = await fetch_token(http, base_url, provider, tenant, secret)
    pipe = store.pipeline(transaction=True)
    pipe.set(token_key(provider, tenant), cipher.seal(token), ex=ttl)
    pipe.delete(set_key(provider, tenant))
    await pipe.execute()
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
