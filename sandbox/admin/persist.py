"""What must survive a Redis restart: the cache options and the token store.

Redis runs without persistence (`--save ''`), so a restart empties it: the options set through
`POST /admin/cache/options` (a TTL set by a chaos control, say) would silently fall back to
the defaults, and every connector would have to fetch its tokens again on the hot path. The
control plane keeps the options it set in `DIR/cache-options.json` and a marker key in Redis;
when the marker is gone (Redis restarted or flushed) it re-applies the options and refreshes
every provider's tokens within about a second, and says so in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.exceptions import RedisError

from sandbox.admin.actions import refresh_tokens
from sandbox.admin.plane import ControlPlane
from sandbox.cache import CONFIG_KEY
from sandbox.errors import ApiError

__all__ = ["EPOCH_KEY", "keep_redis_state", "reapply"]

EPOCH_KEY = "omnisql:epoch"


async def reapply(plane: ControlPlane) -> None:
    saved: dict[Any, Any] = dict(plane.saved_options())
    if saved:
        await plane.store.hset(CONFIG_KEY, mapping=saved)
    for provider in plane.state["providers"]:
        await refresh_tokens(plane, {"provider": provider})
    await plane.store.set(EPOCH_KEY, "1")
    plane.audit.write(who="control-plane", method="REAPPLY", path="redis",
                      status=f"options {sorted(saved)} and tokens re-applied")


async def keep_redis_state(plane: ControlPlane, interval: float = 0.5) -> None:
    """Forever: re-apply the options and tokens whenever Redis lost them."""
    while True:
        with contextlib.suppress(RedisError, ApiError, OSError):
            if not await plane.store.exists(EPOCH_KEY):
                await reapply(plane)
        await asyncio.sleep(interval)
