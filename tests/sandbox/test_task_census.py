"""The task census (``GET /_control/tasks``) names where a service's tasks wait."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from sandbox.tasks import task_census, tasks_endpoint


async def _parked(gate: asyncio.Event) -> None:
    await gate.wait()


def test_the_census_counts_tasks_by_the_await_they_are_parked_in() -> None:
    async def main() -> dict[str, object]:
        gate = asyncio.Event()
        parked = [asyncio.create_task(_parked(gate)) for _ in range(3)]
        await asyncio.sleep(0)  # each task runs to its await
        census = task_census()
        gate.set()
        await asyncio.gather(*parked)
        return census

    census = asyncio.run(main())
    where = {row["at"]: row["count"] for row in census["where"]}  # type: ignore[union-attr]
    # innermost last: our coroutine, then Event.wait, then the future it awaits
    parked_at = [at for at in where if at.startswith("_parked:") and " > wait:" in at]
    assert len(parked_at) == 1 and where[parked_at[0]] == 3, where
    assert census["tasks"] == sum(where.values()) >= 4  # the three and main itself


def test_the_route_answers_json() -> None:
    app = Starlette(routes=[Route("/_control/tasks", tasks_endpoint)])
    with TestClient(app) as client:
        body = client.get("/_control/tasks").json()
    assert body["tasks"] >= 1 and body["where"][0]["count"] >= 1
