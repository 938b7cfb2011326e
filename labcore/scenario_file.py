"""Reading scenario files: YAML with line numbers, target profiles and ``--set`` overrides.

Every mistake in a scenario file is reported as a :class:`ScenarioError` naming the
file, the field path and the line, e.g.::

    scenarios/az_loss.yaml:14: topology.engine.workers_per_zon: unknown field

The CLI turns it into exit code 2 without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import ValidationError

from .scenario import Scenario

__all__ = [
    "ScenarioError",
    "ScenarioFile",
    "read_scenario",
    "load_scenario",
    "parse_override",
]


class ScenarioError(Exception):
    """A scenario that cannot be used, with where the problem is."""

    def __init__(self, file: str, message: str, path: str = "", line: int | None = None) -> None:
        self.file, self.message, self.path, self.line = file, message, path, line
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")


@dataclass(frozen=True)
class ScenarioFile:
    """A scenario as read: where from, the effective data (units kept) and the model."""

    path: Path
    data: dict[str, Any]
    scenario: Scenario
    profile: str | None = None
    overrides: tuple[str, ...] = field(default=())
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict, repr=False)

    def error(self, path: tuple[Any, ...], message: str) -> ScenarioError:
        """A :class:`ScenarioError` pointing at ``path`` in this file (its nearest line)."""
        line = _nearest(self.lines, path)
        return ScenarioError(str(self.path), message, ".".join(map(str, path)), line)


def load_scenario(
    path: str | Path, profile: str | None = None, overrides: Iterable[str] = ()
) -> Scenario:
    """Read, override and validate a scenario file; raise :class:`ScenarioError`."""
    return read_scenario(path, profile, overrides).scenario


def read_scenario(
    path: str | Path, profile: str | None = None, overrides: Iterable[str] = ()
) -> ScenarioFile:
    """Like :func:`load_scenario`, keeping the effective data to write beside the results."""
    path = Path(path)
    text = _read_text(path)
    data, lines = _parse_yaml(text, str(path))
    overrides = tuple(overrides)
    origin: dict[tuple[Any, ...], str] = {}
    if profile is not None:
        for dotted, value in _profile(data, profile, str(path)).items():
            _apply(data, dotted, value, str(path), f"profile {profile}", origin)
    for item in overrides:
        dotted, value = parse_override(item, str(path))
        _apply(data, dotted, value, str(path), f"--set {item}", origin)
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise _first_error(exc, str(path), data, lines, origin) from None
    return ScenarioFile(path, data, scenario, profile, overrides, lines)


def parse_override(item: str, file: str = "--set") -> tuple[str, Any]:
    """``"topology.engine.workers_per_zone=12"`` → ``("topology.engine.workers_per_zone", 12)``."""
    dotted, sep, raw = item.partition("=")
    if not sep or not dotted.strip():
        raise ScenarioError(file, f"--set {item!r} must read dotted.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return dotted.strip(), value


# --------------------------------------------------------------------------- internals


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), "no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), f"cannot read: {exc}") from None


def _parse_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ScenarioError(file, f"invalid YAML: {exc.problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(file, f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(file, "a scenario file must be a mapping (name:, run:, topology:, ...)")
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines, file)
    return data, lines


def _index_lines(node: yaml.Node, path: tuple[Any, ...], lines: dict, file: str) -> None:
    """Record the line of every key and item; refuse duplicate keys, which YAML hides."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                where = ".".join(map(str, path + (key,)))
                raise ScenarioError(file, "duplicate key", where, key_node.start_mark.line + 1)
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(value_node, path + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _index_lines(item, path + (index,), lines, file)


def _profile(data: Mapping[str, Any], name: str, file: str) -> Mapping[str, Any]:
    profiles = data.get("profiles") or {}
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ScenarioError(file, f"unknown profile {name!r} (this scenario has: {known})", "profiles")
    chosen = profiles[name]
    if not isinstance(chosen, dict):
        raise ScenarioError(file, "a profile maps dotted paths to values", f"profiles.{name}")
    return chosen


def _apply(
    data: dict[str, Any], dotted: str, value: Any, file: str, source: str, origin: dict
) -> None:
    keys = dotted.split(".")
    node: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ScenarioError(file, f"{source}: no item {key} in {'.'.join(keys[:depth])}")
            if last:
                node[int(key)] = value
            node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise ScenarioError(file, f"{source}: {'.'.join(keys[:depth])} is a value, not a section")
    origin[tuple(int(k) if k.isdigit() else k for k in keys)] = source


def _first_error(
    exc: ValidationError, file: str, data: Any, lines: dict, origin: dict
) -> ScenarioError:
    error = exc.errors()[0]
    path = _data_path(error["loc"], data)
    message = _message(error)
    inner = _inner_path(message, data)
    if inner:  # a cross-reference error names its own, deeper path
        path, message = inner
    source = _nearest(origin, path)
    if source:
        message = f"{message} (from {source})"
    line = _nearest(lines, path)
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return ScenarioError(file, message, ".".join(map(str, path)), line)


def _nearest(table: Mapping[tuple[Any, ...], Any], path: tuple[Any, ...]) -> Any:
    """The entry for ``path`` or its deepest ancestor in ``table``; ``None`` if none."""
    for n in range(len(path), -1, -1):
        if path[:n] in table:
            return table[path[:n]]
    return None


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Map pydantic's location to a path in the data, dropping union tags and wrappers."""
    path: list[Any] = []
    node = data
    for index, element in enumerate(loc):
        is_last = index == len(loc) - 1
        if isinstance(node, dict) and element in node:
            path.append(element)
            node = node[element]
        elif isinstance(node, list) and isinstance(element, int) and element < len(node):
            path.append(element)
            node = node[element]
        elif is_last and isinstance(element, str) and "[" not in element:
            path.append(element)  # a missing or unknown field: name it
    return tuple(path)


def _inner_path(message: str, data: Any) -> tuple[tuple[Any, ...], str] | None:
    head, sep, rest = message.partition(": ")
    if not sep or " " in head or "." not in head:
        return None
    keys = tuple(int(k) if k.isdigit() else k for k in head.split("."))
    node = data
    for key in keys:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return keys, rest


def _message(error: Mapping[str, Any]) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see docs/scenarios.md)"
    if kind == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")
