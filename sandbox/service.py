"""What every sandbox HTTP service shares: JSON bodies, errors, health, uvicorn on loopback."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.errors import ApiError, error_response
from sandbox.state import LOOPBACK

__all__ = [
    "EXCEPTION_HANDLERS",
    "MAX_BODY",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "handle_errors",
    "health",
    "parse_body",
    "read_json",
    "run_app",
]

MAX_BODY = 16 * 1024
MAX_DEPTH = 16  # objects/arrays within one another; real bodies use 2
MAX_INT_DIGITS = 18  # fits a PostgreSQL bigint; longer is an attack, not a value
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
    return parse_body(body)


def _bad(message: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message)


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _bad(f"integers have at most {MAX_INT_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or len(text) > 40:
        raise _bad("number out of range")
    return value


def _constant(name: str) -> Any:
    raise _bad(f"{name} is not a JSON number")


def _check_tree(data: Any) -> None:
    """Depth bounded; every string (keys too) valid Unicode (no lone surrogates)."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad(f"JSON nested deeper than {MAX_DEPTH}")
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad("strings must be valid Unicode (no lone surrogates)") from None


def parse_body(body: bytes) -> dict[str, Any]:
    """Strict JSON: an object, finite numbers only, integers of at most 18 digits, depth
    bounded, valid strings; anything else is a 400, never a 500."""
    try:
        data = json.loads(body or b"{}", parse_int=_int, parse_float=_float,
                          parse_constant=_constant)
    except (ValueError, UnicodeDecodeError):
        raise _bad("body is not valid JSON") from None
    except RecursionError:
        raise _bad(f"JSON nested deeper than {MAX_DEPTH}") from None
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object")
    _check_tree(data)
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
