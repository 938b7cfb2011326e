"""Where a service's asyncio tasks are waiting: a census for diagnosing a wedged stand-in.

A thread dump (py-spy) of an asyncio service shows only the event loop; what a wedge is made
of is the tasks parked on some await. ``GET /_control/tasks`` (``/internal/tasks`` on the
gateway, behind the internal token like the other control routes) counts the live tasks by
the chain of functions each one is suspended in, innermost last.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["task_census", "tasks_endpoint"]

#: Frames kept per task, innermost last: enough to tell the awaits apart.
DEPTH = 6


def _where(task: asyncio.Task[Any]) -> str:
    """The functions ``task`` is suspended in, outermost first, following each coroutine's
    await (``Task.get_stack`` stops at the outermost frame of a suspended coroutine)."""
    names: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:  # a future, a task or a finished coroutine: name it, stop
            names.append(type(awaited).__name__)
            break
        names.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " > ".join(names[-DEPTH:])


def task_census() -> dict[str, Any]:
    """The live tasks of the running loop, counted by where they wait (most first)."""
    counts = Counter(_where(t) for t in asyncio.all_tasks() if not t.done())
    return {"tasks": sum(counts.values()),
            "where": [{"count": n, "at": at} for at, n in counts.most_common()]}


async def tasks_endpoint(request: Request) -> Response:
    return JSONResponse(task_census())
