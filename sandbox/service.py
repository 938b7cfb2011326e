"""What every sandbox HTTP service shares: JSON bodies, errors, health, uvicorn on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.errors import ApiError, error_response
from sandbox.state import LOOPBACK

__all__ = ["EXCEPTION_HANDLERS", "MAX_BODY", "handle_errors", "health", "read_json", "run_app"]

MAX_BODY = 16 * 1024
Handler = Callable[..., Awaitable[Response]]


async def read_json(request: Request, max_bytes: int = MAX_BODY) -> dict[str, Any]:
    """The body as a JSON object; 413 when too large, 400 when not an object."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {max_bytes} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:  # a chunked body has no content-length to trust
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body exceeds {max_bytes} bytes")
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "BAD_REQUEST", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_REQUEST", "body must be a JSON object")
    return data


def handle_errors(fn: Handler) -> Handler:
    """Turn ApiError into its JSON response (the only error shape clients see)."""

    async def wrapper(request: Request, *args: Any) -> Response:
        try:
            return await fn(request, *args)
        except ApiError as err:
            return error_response(err)

    wrapper.__name__ = fn.__name__
    return wrapper


async def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug still answers in the one error shape, naming only the exception class.
    print(f"internal error on {request.url.path}: {type(exc).__name__}", flush=True)
    return error_response(ApiError(500, "INTERNAL", "internal error"))


EXCEPTION_HANDLERS: dict[Any, Any] = {Exception: _internal_error}


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_app(app: Any, port: int, *more_ports: int) -> None:
    """Serve on loopback; access logs off because URLs and headers may carry secrets.
    `more_ports` are further listeners of the same app (the gateway's internal one): the app
    tells them apart by `scope["server"]`."""
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning",
                            access_log=False, timeout_keep_alive=30, lifespan="on")
    uvicorn.Server(config).run(sockets=[_listener(p) for p in (port, *more_ports)])
