"""Target safety: allowlist, default host from the state file, keys never committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.targets import TargetError, check_host, resolve_target

TENANTS = ("acme", "umbrella")


def _state(tmp_path: Path, gateway: str = "http://127.0.0.1:41001") -> Path:
    state = {"gateway_url": gateway, "admin_url": "http://127.0.0.1:41002",
             "tenants": {t: {"api_key": f"key-{t}", "users": ["u1"]} for t in TENANTS}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    return tmp_path


def test_default_host_and_keys_come_from_the_state_file(tmp_path: Path) -> None:
    target = resolve_target(TENANTS, directory=str(_state(tmp_path)), environ={})
    assert target.host == "http://127.0.0.1:41001"
    assert target.admin_url == "http://127.0.0.1:41002"
    assert dict(target.api_keys) == {"acme": "key-acme", "umbrella": "key-umbrella"}
    assert "key-" not in repr(target)


def test_keys_from_the_environment_win(tmp_path: Path) -> None:
    env = {"OMNISQL_API_KEY_ACME": "from-env"}
    target = resolve_target(TENANTS, directory=str(_state(tmp_path)), environ=env)
    assert target.api_keys["acme"] == "from-env"
    alone = resolve_target(["acme"], host="http://localhost:9", directory=str(tmp_path / "none"),
                           environ=env)
    assert alone.api_keys == {"acme": "from-env"} and alone.admin_url is None


def test_hosts_off_the_allowlist_are_refused(tmp_path: Path) -> None:
    sandbox = str(_state(tmp_path))
    with pytest.raises(TargetError, match="not on the allowlist"):
        resolve_target(TENANTS, host="https://staging.example.com", directory=sandbox, environ={})
    ok = resolve_target(TENANTS, host="https://staging.example.com", directory=sandbox,
                        allow=["staging.example.com"], environ={})
    assert ok.admin_url is None  # the sandbox's fault API never goes with another host
    env = {"OMNISQL_ALLOWED_HOSTS": "staging.example.com, other"}
    assert resolve_target(TENANTS, host="https://staging.example.com/", directory=sandbox,
                          environ=env).host == "https://staging.example.com"
    legacy = {"OMNISQL_LOADTEST_ALLOWED_HOSTS": "staging.example.com, other"}
    with pytest.warns(DeprecationWarning, match="OMNISQL_ALLOWED_HOSTS"):
        assert resolve_target(TENANTS, host="https://staging.example.com/", directory=sandbox,
                              environ=legacy).host == "https://staging.example.com"
    with pytest.raises(TargetError, match="http"):
        check_host("ftp://127.0.0.1", frozenset({"127.0.0.1"}))


def test_missing_state_or_keys_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no --host and no sandbox state file"):
        resolve_target(TENANTS, directory=str(tmp_path), environ={})
    with pytest.raises(TargetError, match=r"OMNISQL_API_KEY_GLOBEX"):
        resolve_target(["globex"], directory=str(_state(tmp_path)), environ={})
