"""OAuth tokens in Redis are sealed (issue 16, item 3: "tokens stored encrypted or at least not
usable as-is").

The defect: Redis held each tenant's provider token in plaintext, so anyone who could read
Redis could call the providers as any tenant. Now every value is sealed with a key that lives
only in the services' 0600 config; the test reads Redis as an intruder with the Redis password
would, and checks that what it finds is refused by the provider, while queries still work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from sandbox.testing import detached_sandbox
from sandbox.tokens import TokenCipher, new_token_key

pytestmark = pytest.mark.sandbox


class Sandbox:
    """The state and a query helper of a stand-in of this module's own."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def query(self, tenant: str, sql: str) -> httpx.Response:
        key = self.state["tenants"][tenant]["api_key"]
        return httpx.post(f"{self.state['gateway_url']}/v1/query", json={"sql": sql},
                          headers={"Authorization": f"Bearer {key}", "X-OmniSQL-User": "u1"},
                          timeout=30.0)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """Not the session's stand-in: test_sandbox.py's last test takes that one down, and this
    file runs after it."""
    with detached_sandbox("omnisql-tokens-") as box:
        yield Sandbox(json.loads((box / "state.json").read_text()))

# One object per provider, to call the provider's records endpoint directly.
OBJECTS = {"crm": "accounts", "tickets": "tickets"}


def _provider_status(sandbox: Sandbox, provider: str, token: str) -> int:
    url = f"{sandbox.state['providers'][provider]}/v1/{OBJECTS[provider]}"
    resp = httpx.get(url, params={"page_size": 1}, timeout=30.0,
                     headers={"Authorization": f"Bearer {token}"})
    return resp.status_code


def _stored(sandbox: Sandbox) -> dict[str, bytes]:
    store = redis.Redis(port=sandbox.state["redis"]["port"], socket_timeout=10,
                        password=sandbox.state["internal"]["redis_password"])
    try:
        values = {key.decode(): store.get(key) for key in store.scan_iter("omnisql:token:*")}
    finally:
        store.close()
    return {key: value for key, value in values.items() if value is not None}


@pytest.mark.timeout(180)
def test_tokens_in_redis_are_not_usable_as_is(sandbox: Sandbox) -> None:
    for n, tenant in enumerate(sorted(sandbox.state["tenants"])):
        for sql in (f"SELECT id FROM crm.accounts WHERE id = {71 + n}",
                    f"SELECT id FROM tickets.tickets WHERE id = {71 + n}"):
            resp = sandbox.query(tenant, sql)
            assert resp.status_code == 200, (tenant, sql, resp.text)
    stored = _stored(sandbox)
    assert len(stored) == len(sandbox.state["tenants"]) * len(OBJECTS), sorted(stored)
    cipher = TokenCipher(sandbox.state["internal"]["token_key"])
    for key, raw in stored.items():
        provider = key.split(":")[2]
        token = cipher.open(raw)
        # The real token (opened with the key that is not in Redis) is one the provider takes,
        # so the checks below compare against a live token, not a made-up one.
        assert token is not None and _provider_status(sandbox, provider, token) == 200, key
        assert token.encode() not in raw, key
        # What an intruder copies out of Redis is refused.
        assert _provider_status(sandbox, provider, raw.decode()) == 401, key


def test_cipher_seals_opens_and_refuses_other_keys() -> None:
    cipher, other = TokenCipher(new_token_key()), TokenCipher(new_token_key())
    sealed = cipher.seal("tok-123")
    assert b"tok-123" not in sealed and cipher.open(sealed) == "tok-123"
    assert cipher.seal("tok-123") != sealed  # a fresh IV every time: equal tokens look different
    assert other.open(sealed) is None
    assert cipher.open(b"tok-123") is None  # a plaintext value left by an older sandbox
    tampered = sealed[:-4] + (b"AAAA" if not sealed.endswith(b"AAAA") else b"BBBB")
    assert cipher.open(tampered) is None
