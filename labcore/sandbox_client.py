"""The one client of the staging stand-in: state file, host allowlist, admin and fault API.

The chaos extension and the Locust load both aim at the sandbox (``python -m sandbox
up``) or at a staging host; both go through here, so the state file is read one way, a
host is allowed by one rule and every admin or fault call is made one way:

* :func:`sandbox_dir` and :func:`read_state`: ``--sandbox-dir``/``omnisql_sandbox_dir``,
  else ``$OMNISQL_SANDBOX_DIR``, else ``./.sandbox``; ``state.json`` holds the URLs, the
  zones, the tenants' keys and (once the stand-in requires it) ``admin_token``;
* :func:`allowed_hosts` and :func:`check_url`: loopback, plus ``$OMNISQL_ALLOWED_HOSTS``
  (the old ``$OMNISQL_LOADTEST_ALLOWED_HOSTS`` still counts, with a deprecation warning),
  plus hosts the caller adds (``--allow-host``, ``omnisql_allowed_hosts``); anything else
  is refused before a byte is sent;
* :class:`SandboxClient`: JSON calls to the admin URL, with ``Authorization: Bearer
  <admin_token>`` whenever the state has one. Errors name the status and the API's error
  code, never a header. Standard library and labcore only, so every runner can use it;
* :func:`apply_scenario` and :func:`scenario_body`: configure the stand-in from a scenario
  file (profile and ``--set`` applied) through ``POST /admin/scenario``, and get back the
  configuration it runs and the fields it cannot honour (``not_honoured``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .scenario_file import ScenarioFile, read_scenario

__all__ = [
    "ALLOW_ENV", "LEGACY_ALLOW_ENV", "LOOPBACK_HOSTS", "ApiError", "SandboxClient",
    "SandboxError", "allowed_hosts", "apply_scenario", "check_url", "read_state",
    "sandbox_dir", "scenario_body", "scenario_label",
]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ALLOW_ENV = "OMNISQL_ALLOWED_HOSTS"
LEGACY_ALLOW_ENV = "OMNISQL_LOADTEST_ALLOWED_HOSTS"


class SandboxError(Exception):
    """The target cannot be used: a refused host, an unreadable state file, no answer."""


class ApiError(SandboxError):
    """The admin API answered with an error status (and, usually, an error code)."""

    def __init__(self, method: str, path: str, status: int, code: str = "",
                 message: str = "") -> None:
        self.status, self.code, self.message = status, code, message
        # The API writes its messages itself (never echoing a secret): worth showing.
        tail = f": {message}" if message else ""
        super().__init__(f"{method} {path}: HTTP {status} {code}".rstrip() + tail)


def sandbox_dir(explicit: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] = os.environ) -> Path:
    """The sandbox directory, with the same precedence as ``python -m sandbox``."""
    return Path(explicit or environ.get("OMNISQL_SANDBOX_DIR") or ".sandbox")


def read_state(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sandbox's ``state.json``, or None when no sandbox is up there."""
    path = Path(directory) / "state.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"{path}: cannot read the sandbox state file: {exc}") from None
    if not isinstance(data, dict):
        raise SandboxError(f"{path}: not a sandbox state file")
    return data


def _hosts(raw: str | Iterable[str]) -> set[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    return {h.strip().lower() for h in items if h.strip()}


def allowed_hosts(extra: str | Iterable[str] = (),
                  environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    """Loopback, plus ``$OMNISQL_ALLOWED_HOSTS`` (and the deprecated
    ``$OMNISQL_LOADTEST_ALLOWED_HOSTS``), plus ``extra`` (a list or a comma-separated string)."""
    legacy = environ.get(LEGACY_ALLOW_ENV, "")
    if legacy:
        warnings.warn(f"${LEGACY_ALLOW_ENV} is deprecated: use ${ALLOW_ENV}",
                      DeprecationWarning, stacklevel=2)
    return frozenset(LOOPBACK_HOSTS | _hosts(environ.get(ALLOW_ENV, "")) | _hosts(legacy)
                     | _hosts(extra))


def check_url(url: str, allowed: frozenset[str], how: str = "") -> str:
    """``url`` without a trailing slash if it is http(s) on an allowed host; refuse it
    otherwise. ``how``: the caller's way to allow a host, for the message."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SandboxError(f"host {url!r} must be an http(s) URL, e.g. http://127.0.0.1:8080")
    if parts.hostname.lower() not in allowed:
        ways = " or ".join(w for w in (how, f"${ALLOW_ENV}") if w)
        raise SandboxError(f"host {parts.hostname!r} is not on the allowlist "
                           f"({', '.join(sorted(allowed))}); add it with {ways} if you mean it")
    return url.rstrip("/")


@dataclass(frozen=True)
class SandboxClient:
    """JSON calls to an (allowlisted) admin URL; the token is sent, never shown."""

    admin_url: str
    admin_token: str | None = field(default=None, repr=False)
    timeout: float = 60.0  # promotion and rebuild run pg tools: seconds, not milliseconds

    @classmethod
    def from_state(cls, state: Mapping[str, Any], allowed: frozenset[str],
                   timeout: float = 60.0) -> SandboxClient:
        """The client of a sandbox state file's admin URL (checked) and token."""
        url = check_url(str(state.get("admin_url") or ""), allowed)
        return cls(url, state.get("admin_token") or None, timeout)

    def _request(self, method: str, path: str, body: Any) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        if self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        data = json.dumps(body).encode() if body is not None else None
        return urllib.request.Request(self.admin_url.rstrip("/") + path, data=data,
                                      method=method, headers=headers)

    def status(self, method: str, path: str, body: Any = None) -> int:
        """Make the call and return its HTTP status (OSError if nothing answered)."""
        try:
            with urllib.request.urlopen(self._request(method, path, body),
                                        timeout=self.timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Make the call and return its JSON answer; :class:`ApiError` on a 4xx/5xx,
        :class:`SandboxError` if nothing answered."""
        try:
            with urllib.request.urlopen(self._request(method, path, body),
                                        timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, *_error(exc.read())) from None
        except (OSError, ValueError) as exc:
            raise SandboxError(f"{method} {path}: {type(exc).__name__}") from None

    def stats(self, window: int) -> dict[str, Any]:
        """The gateway's stats over the last ``window`` seconds (``GET /v1/stats``)."""
        data: dict[str, Any] = self.call("GET", f"/v1/stats?window={int(window)}")
        return data


def scenario_label(source: ScenarioFile) -> str:
    """``rate_limit_flood.yaml --profile standin --set a=b``: how the stand-in names it."""
    parts = [source.path.name] + ([f"--profile {source.profile}"] if source.profile else [])
    return " ".join(parts + [f"--set {item}" for item in source.overrides])[:300]


def scenario_body(source: ScenarioFile) -> dict[str, Any]:
    """The body of ``POST /admin/scenario``: the effective mapping and its label. The
    mapping goes through JSON as YAML gave it (units kept; a date or another YAML-only value
    becomes its text, which the schema then judges)."""
    data = json.loads(json.dumps(source.data, default=str))
    return {"name": scenario_label(source), "scenario": data}


def apply_scenario(client: SandboxClient, source: str | os.PathLike[str] | ScenarioFile,
                   profile: str | None = None, overrides: Iterable[str] = ()
                   ) -> dict[str, Any]:
    """Read the scenario (a path, with ``profile`` and ``overrides``; or a file already read)
    and configure the stand-in from it. Returns the applied configuration with
    ``not_honoured`` (dotted paths) and ``reasons`` (path → why). Raises
    :class:`~labcore.scenario_file.ScenarioError` for a bad file, :class:`ApiError` when the
    stand-in refuses it, :class:`SandboxError` when nothing answers."""
    if not isinstance(source, ScenarioFile):
        source = read_scenario(Path(source), profile, overrides)
    answer: dict[str, Any] = client.call("POST", "/admin/scenario", scenario_body(source))
    return answer


def _error(raw: bytes) -> tuple[str, str]:
    """The API's error code and message (empty when the answer has none)."""
    try:
        error = json.loads(raw)["error"]
        return str(error["code"]), str(error.get("message", ""))[:2000]
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", ""
