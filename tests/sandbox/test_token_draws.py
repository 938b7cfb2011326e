"""Which of a tenant's tokens a connector call uses (``sandbox.connector``, issue 18).

While a tenant holds a set of tokens (SOP-103's paced refresh), each provider call draws
one of them from the connector's seeded stream, and the re-read after a 401 reads that same
one: the simulator decides a call's 401 with one draw against the revoked share, so a
second draw would make the stand-in's 401 share the square of the simulator's. No
services: the token store and the provider are stand-ins of this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from scipy.stats import binomtest

from sandbox import connector as connector_module
from sandbox.connector import Connector, ConnectorConfig
from sandbox.errors import ApiError
from sandbox.standin import default_config
from sandbox.tokens import new_token_key

CALLS = 400


def _connector(seed: int, zone: str = "az-a") -> Connector:
    config = ConnectorConfig(zone=zone, providers={"crm": "http://127.0.0.1:9"},
                             client_secrets={"acme": "s"}, redis_port=9,
                             redis_password="unused", service_token="unused",
                             token_key=new_token_key())
    connector = Connector(config)
    connector.apply({**default_config()["connector"], "seed": seed})
    return connector


class HalfRenewed:
    """acme's set of two tokens with the first renewed; records every read."""

    def __init__(self) -> None:
        self.draws: list[int] = []
        self.rereads: list[int | None] = []

    async def credential(self, *args: Any) -> tuple[str, int]:
        index = int(args[-1](2))  # load_credential(store, cipher, provider, tenant, draw)
        self.draws.append(index)
        return ("renewed" if index == 0 else "revoked"), index

    async def token(self, *args: Any) -> str:
        index = args[-1]  # load_token(store, cipher, provider, tenant, index)
        self.rereads.append(index)
        return "renewed" if index == 0 else "revoked"


async def _provider(url: str, params: dict[str, Any], token: str, provider: str,
                    tenant: str) -> httpx.Response:
    if token == "renewed":
        return httpx.Response(200, json={"records": [{"id": 1}], "next_cursor": None})
    return httpx.Response(401, json={"error": {"code": "INVALID_TOKEN"}})


async def _calls(connector: Connector) -> list[bool]:
    answered = []
    for _ in range(CALLS):
        try:
            await connector._get_page("acme", "crm", "accounts", {"page_size": 1})
            answered.append(True)
        except ApiError as err:
            assert err.code == "PROVIDER_UNAUTHORIZED"
            answered.append(False)
    await connector.close()
    return answered


def test_each_call_draws_once_and_a_401_rereads_the_token_it_drew(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = HalfRenewed()
    monkeypatch.setattr(connector_module, "load_credential", store.credential)
    monkeypatch.setattr(connector_module, "load_token", store.token)
    connector = _connector(seed=1)
    monkeypatch.setattr(connector, "_call", _provider)
    answered = asyncio.run(_calls(connector))
    assert len(store.draws) == CALLS  # one draw a call, none after its 401
    assert store.rereads == [index for index in store.draws if index == 1]
    assert answered == [index == 0 for index in store.draws]
    # half the calls are answered, as the simulator's 401 share of 1/2 says (a second
    # draw after the 401 would answer three in four)
    assert binomtest(sum(answered), CALLS, 0.5).pvalue > 1e-3, sum(answered)


def test_the_draws_are_a_named_stream_of_the_run_seed_and_the_zone() -> None:
    def draws(connector: Connector) -> list[int]:
        stream = connector._draw("crm")
        return [stream.randrange(200) for _ in range(20)]

    assert draws(_connector(1)) == draws(_connector(1))
    assert draws(_connector(1)) != draws(_connector(2))
    assert draws(_connector(1)) != draws(_connector(1, zone="az-b"))
    changed = _connector(1)
    first = draws(changed)
    changed.apply({**default_config()["connector"], "seed": 1})  # the same seed: the same stream
    assert draws(changed) != first  # it went on, not back to the start
    changed.apply({**default_config()["connector"], "seed": 2})
    assert draws(changed) == draws(_connector(2))  # a new seed: the new stream from its start
