"""The YAML dialect of scenario files: YAML 1.2 booleans and a bounded document.

Two things PyYAML's ``safe_load`` does that a scenario reader must not:

* **YAML 1.1 booleans.** ``on``, ``off``, ``yes``, ``no`` (any case) are read as ``true`` /
  ``false``, so ``topology.gateway.retries.on:`` became the key ``True``. YAML 1.2 (the
  current spec) knows only ``true`` and ``false``; :class:`ScenarioLoader` follows it and
  reads the others as strings. A boolean field still accepts them as values (pydantic
  reads ``"on"`` as true), so no shipped scenario changes meaning.
* **Unbounded aliases.** Anchors and aliases (``&a`` / ``*a``) let a file of a few hundred
  bytes describe 10^9 nodes (the "billion laughs"): composing it is cheap, but every
  consumer that walks the data expands it. The document is refused before anything
  walks it if it has more than :data:`MAX_ALIASES` aliases, more than :data:`MAX_NODES`
  nodes once aliases are expanded, is nested deeper than :data:`MAX_DEPTH`, or refers to
  itself. The expanded size is counted on the node graph with a memo, so counting a bomb
  costs as little as composing it.

The constructed data never shares objects between aliased places: a ``--set`` on one
path must not change another.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import ComposerError

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_NODES",
    "ScenarioLoader",
    "load_yaml",
    "load_yaml_value",
]

#: Far above what any scenario needs (the shipped ones use none), far below a bomb.
MAX_ALIASES = 1_000
MAX_NODES = 200_000
MAX_DEPTH = 64

_BOOL_1_2 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class ScenarioLoader(yaml.SafeLoader):
    """``SafeLoader`` with YAML 1.2 booleans, counting aliases and nesting as it composes."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_ALIASES:,} aliases (*name): "
                                    "refused, a scenario needs far fewer", _mark(event))
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                    _mark(event))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mark(event: Any) -> Any:
    return event.start_mark  # typed as either PyYAML's or libyaml's Mark: the same fields


ScenarioLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_1_2, list("tTfF"))


def load_yaml(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """Compose ``text`` once, refuse an oversized document, construct unshared data.

    Raises ``yaml.YAMLError`` (a ``MarkedYAMLError`` with the line where it can).
    """
    loader = ScenarioLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_size(node)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return node, _unshare(data)


def load_yaml_value(text: str) -> Any:
    """One ``--set`` value, read with the same rules as a scenario file."""
    return load_yaml(text, "--set")[1]


def _check_size(root: yaml.Node) -> None:
    sizes: dict[int, int] = {}
    total = _expanded(root, sizes, set())
    if total > MAX_NODES:
        raise ComposerError(None, None, f"the document expands to more than {MAX_NODES:,} "
                            "nodes through its aliases (*name): refused (a 'billion laughs' "
                            "file?)",
                            root.start_mark)


def _expanded(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """Nodes ``node`` stands for once aliases are expanded (capped just above the limit)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise ComposerError(None, None, "an alias refers to the node that contains it",
                            node.start_mark)
    open_.add(key)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    total = 1
    for child in children:
        total = min(total + _expanded(child, sizes, open_), MAX_NODES + 1)
    open_.discard(key)
    sizes[key] = total
    return total


def _unshare(value: Any) -> Any:
    """A copy of ``value`` in which no dict or list appears twice (bounded by the check)."""
    if isinstance(value, dict):
        return {key: _unshare(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshare(item) for item in value]
    return value
